// Starts Swagger UI on the page's #swagger-ui element, for the spec its data-openapi-url names.
// It is a file rather than an inline script so that the page's Content-Security-Policy can
// refuse inline scripts.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    domNode: root,
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // No online-validator badge, whatever the layout: it is an image from validator.swagger.io.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
  });
})();
