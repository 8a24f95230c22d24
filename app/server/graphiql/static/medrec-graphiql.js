/*
 * medrec's GraphiQL bootstrap. A file of its own, not an inline script, so the page's
 * Content-Security-Policy can be `script-src 'self'`. Expects the globals of the vendored UMD
 * bundles loaded before it: React, ReactDOM and GraphiQL.
 */
(function () {
  "use strict";

  // GraphiQL's dialogs add a <style> element (react-style-singleton); it carries this nonce, which
  // the page's `style-src` allows for this response only.
  var nonce = document.querySelector('meta[name="medrec-style-nonce"]');
  if (nonce && nonce.content) {
    window.__webpack_nonce__ = nonce.content;
  }

  // The page is served by the GraphQL endpoint itself: queries go back to this very URL, and
  // subscriptions to the same URL over WebSocket (graphql-transport-ws).
  var url = window.location.origin + window.location.pathname;
  var subscriptionUrl = url.replace(/^http/, "ws");

  // Header editor values are sent with every HTTP request and as the `connection_init` payload
  // of subscriptions, where the server reads `Authorization` too.
  var fetcher = GraphiQL.createFetcher({ url: url, subscriptionUrl: subscriptionUrl });

  var defaultHeaders = '{\n  "Authorization": "Bearer <paste a token>"\n}\n';
  var defaultQuery = [
    "# medrec GraphQL API",
    "#",
    "# Paste an access token into the Headers editor below, then run a query",
    "# (Ctrl-Enter or the play button). Subscriptions run over WebSocket.",
    "",
    "{",
    "  me {",
    "    subject",
    "  }",
    "}",
    "",
  ].join("\n");

  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: defaultQuery,
      defaultHeaders: defaultHeaders,
      defaultEditorToolsVisibility: "headers",
      isHeadersEditorEnabled: true,
      // Tokens stay in this tab's memory: never written to localStorage.
      shouldPersistHeaders: false,
    })
  );
})();
