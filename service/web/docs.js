// Swagger UI for /docs, from files this service serves (pinned by the fastapi-offline
// package): no CDN, and no inline script, so it runs under the page's strict CSP.
"use strict";

window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null, // the default validator is a remote service
});
