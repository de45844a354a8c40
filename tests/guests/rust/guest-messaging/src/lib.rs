//! Bindings for the messaging test guests: the world `omnia:guests/messaging-http`
//! (wasi:http/proxy, wasi:keyvalue, wasi:messaging producer and request-reply, and the
//! messaging `incoming-handler` export), with the HTTP, I/O and key-value types of guest-http,
//! so that its helpers apply. A guest implements both handlers' `Guest` traits and calls
//! `guest_messaging::export!(Component);`.

wit_bindgen::generate!({
    path: "../../wit",
    world: "omnia:guests/messaging-http",
    with: {
        "wasi:http/types@0.2.12": guest_http::wasi::http::types,
        "wasi:http/outgoing-handler@0.2.12": guest_http::wasi::http::outgoing_handler,
        "wasi:io/error@0.2.12": guest_http::wasi::io::error,
        "wasi:io/poll@0.2.12": guest_http::wasi::io::poll,
        "wasi:io/streams@0.2.12": guest_http::wasi::io::streams,
        "wasi:keyvalue/store@0.2.0-draft": guest_http::wasi::keyvalue::store,
        "wasi:keyvalue/atomics@0.2.0-draft": guest_http::wasi::keyvalue::atomics,
    },
    pub_export_macro: true,
    default_bindings_module: "guest_messaging",
    generate_all,
});
