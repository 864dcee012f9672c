"""The session message kinds beyond text: `media` and `interactive`, held to Meta's limits.

Both travel to Meta exactly as given (dumped with `exclude_unset`): every model refuses unknown
keys and `null`, so what passes here is what Meta is sent. Per-field limits are field
constraints (the 422 names the field's path); the rules across fields say their path in the
message. Meta's limits as its interactive-message reference states them: body ≤ 1024, footer
≤ 60, a text header ≤ 60; reply buttons 1-3, title ≤ 20, id ≤ 256, ids and titles unique; a
list's button ≤ 20, 1-10 sections, 1-10 rows in all, row title ≤ 24, description ≤ 72, id ≤ 200,
ids unique, a section title ≤ 24 (needed when there are several), a text header only; a CTA
URL's display_text ≤ 20 and an https url.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from wa_outbound import text


def _https(value: str) -> str:
    if not value.startswith("https://") or len(value) <= len("https://"):
        raise ValueError("must be an https:// URL")
    return value


HttpsUrl = Annotated[
    str, StringConstraints(max_length=2048, strip_whitespace=False), AfterValidator(_https)
]
MediaId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


Text20 = Annotated[str, StringConstraints(min_length=1, max_length=20)]
Text24 = Annotated[str, StringConstraints(min_length=1, max_length=24)]
Text60 = Annotated[str, StringConstraints(min_length=1, max_length=60)]
Text72 = Annotated[str, StringConstraints(min_length=1, max_length=72)]
Text200 = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Text240 = Annotated[str, StringConstraints(min_length=1, max_length=240)]
Text256 = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Text1024 = Annotated[str, StringConstraints(min_length=1, max_length=1024)]


# The default of an optional key: typed as the key's own type, not `X | None`, so that the schema
# offers no `null` (Meta refuses it, and `_no_null` refuses it here) and an error's path has no
# union member in it. `None` at run time only means the key was left out.
_LEFT_OUT: Any = None


class _Exact(BaseModel):
    """Unknown keys refused; an optional field's `None` default only stands for "left out"."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_null(cls, data: Any) -> Any:
        for path, node in text.nodes(data):
            if node is None:
                where = ".".join(str(part) for part in path)
                raise ValueError(f"{where or 'the value'} is null: leave the key out instead")
        return data


class Media(_Exact):
    """An image, video, audio, document or sticker, by `link` (https) or Meta media `id`."""

    type: Literal["image", "video", "audio", "document", "sticker"]
    link: HttpsUrl = _LEFT_OUT
    id: MediaId = _LEFT_OUT
    caption: Text1024 = Field(_LEFT_OUT, description="image, video and document only")
    filename: Text240 = Field(_LEFT_OUT, description="document only")

    @model_validator(mode="after")
    def _fits_its_type(self) -> Media:
        if (self.link is None) == (self.id is None):
            raise ValueError("exactly one of 'link' or 'id' is required")
        if self.caption is not None and self.type not in ("image", "video", "document"):
            raise ValueError(f"caption: a {self.type} has no caption")
        if self.filename is not None and self.type != "document":
            raise ValueError("filename: only a document has a filename")
        return self


class HeaderMedia(_Exact):
    link: HttpsUrl = _LEFT_OUT
    id: MediaId = _LEFT_OUT

    @model_validator(mode="after")
    def _one_source(self) -> HeaderMedia:
        if (self.link is None) == (self.id is None):
            raise ValueError("exactly one of 'link' or 'id' is required")
        return self


class InteractiveHeader(_Exact):
    type: Literal["text", "image", "video", "document"]
    text: Text60 = _LEFT_OUT
    image: HeaderMedia = _LEFT_OUT
    video: HeaderMedia = _LEFT_OUT
    document: HeaderMedia = _LEFT_OUT

    @model_validator(mode="after")
    def _its_part(self) -> InteractiveHeader:
        given = [k for k in ("text", "image", "video", "document") if getattr(self, k) is not None]
        if given != [self.type]:
            raise ValueError(f"a {self.type} header has exactly the key '{self.type}'")
        return self


class InteractiveBody(_Exact):
    text: Text1024


class InteractiveFooter(_Exact):
    text: Text60


class ReplyButtonReply(_Exact):
    id: Text256
    title: Text20


class ReplyButton(_Exact):
    type: Literal["reply"]
    reply: ReplyButtonReply


class ListRow(_Exact):
    id: Text200
    title: Text24
    description: Text72 = _LEFT_OUT


class ListSection(_Exact):
    title: Text24 = _LEFT_OUT
    rows: Annotated[list[ListRow], Field(min_length=1, max_length=10)]


class CtaUrlParameters(_Exact):
    display_text: Text20
    url: HttpsUrl


class InteractiveAction(_Exact):
    """`buttons` (type button), `button` and `sections` (list), or `name` "cta_url" and
    `parameters` (cta_url)."""

    buttons: Annotated[list[ReplyButton], Field(min_length=1, max_length=3)] = _LEFT_OUT
    button: Text20 = _LEFT_OUT
    sections: Annotated[list[ListSection], Field(min_length=1, max_length=10)] = _LEFT_OUT
    name: Literal["cta_url"] = _LEFT_OUT
    parameters: CtaUrlParameters = _LEFT_OUT


_ACTION_KEYS = {
    "button": {"buttons"},
    "list": {"button", "sections"},
    "cta_url": {"name", "parameters"},
}


class Interactive(_Exact):
    """Reply buttons, a list, or a call-to-action URL button, as Meta's `interactive` object."""

    type: Literal["button", "list", "cta_url"]
    header: InteractiveHeader = _LEFT_OUT
    body: InteractiveBody
    footer: InteractiveFooter = _LEFT_OUT
    action: InteractiveAction

    @model_validator(mode="after")
    def _fits_its_type(self) -> Interactive:
        wanted, given = _ACTION_KEYS[self.type], self.action.model_fields_set
        if given != wanted:
            keys = ", ".join(f"'{k}'" for k in sorted(wanted))
            raise ValueError(f"action: a {self.type} message's action has exactly {keys}")
        if self.type == "list" and self.header is not None and self.header.type != "text":
            raise ValueError("header: a list's header is text only")
        if self.action.buttons is not None:
            replies = [button.reply for button in self.action.buttons]
            _unique([reply.id for reply in replies], "action.buttons", "reply.id")
            _unique([reply.title for reply in replies], "action.buttons", "reply.title")
        if self.action.sections is not None:
            _check_sections(self.action.sections)
        return self


def _check_sections(sections: list[ListSection]) -> None:
    rows = [row for section in sections for row in section.rows]
    if len(rows) > 10:
        raise ValueError(f"action.sections: at most 10 rows in all, not {len(rows)}")
    if len(sections) > 1 and any(section.title is None for section in sections):
        raise ValueError("action.sections: each section needs a title when there are several")
    _unique([row.id for row in rows], "action.sections", "rows.id")


def _unique(ids: list[str], where: str, what: str) -> None:
    seen: set[str] = set()
    for index, value in enumerate(ids):
        if value in seen:
            raise ValueError(f"{where}: {what} {value!r} is used twice (item {index})")
        seen.add(value)
