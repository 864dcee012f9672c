// wa-outbound console: small progressive enhancement. Every page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // "Select all" ticks every checkbox of its name in the same form.
  for (const box of document.querySelectorAll("input[data-select-all]")) {
    box.addEventListener("change", () => {
      const name = box.dataset.selectAll;
      for (const other of box.form.querySelectorAll(`input[type=checkbox][name="${name}"]`)) {
        other.checked = box.checked;
      }
    });
  }
  // A select that changes a view submits its form (the button stays for keyboards and no-JS).
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.submit());
  }
  // Pages that show a state still moving reload themselves every few seconds.
  const refresh = document.querySelector("meta[name=wa-refresh]");
  if (refresh) {
    setTimeout(() => window.location.reload(), Number(refresh.content) * 1000);
  }
});
