// A wasi:http handler in JavaScript (componentize-js, fetch-event style): answers with its path.
addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  event.respondWith(
    new Response(`hello from componentize-js, path=${url.pathname}${url.search}\n`, {
      headers: { "content-type": "text/plain" },
    }),
  );
});
