//! Guest components, in the three tiers of the specification:
//!
//! 1. WAT, turned into components here at test time ([`wat_http_hello`], [`wat_exit_code`],
//!    [`wat_fs_reader`]);
//! 2. Rust guests built by `tests/guests/build` and checked in ([`rust`]);
//! 3. componentize-py and componentize-js guests built by `tests/guests/build-polyglot`
//!    ([`polyglot`]).

use std::path::{Path, PathBuf};

use wit_component::{ComponentEncoder, StringEncoding, embed_component_metadata};
use wit_parser::Resolve;

fn guests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("guests")
}

/// A checked-in Rust guest, e.g. `rust("http-echo")`.
pub fn rust(name: &str) -> PathBuf {
    let path = guests_dir().join("bin").join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} missing: run tests/guests/build",
        path.display()
    );
    path
}

/// A componentize-py / componentize-js guest, e.g. `polyglot("py-http")`.
pub fn polyglot(name: &str) -> PathBuf {
    let path = crate::bin::target_dir()
        .join("guests/polyglot")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} missing: run tests/guests/build-polyglot (tests/run does)",
        path.display()
    );
    path
}

/// Encodes a core module (WAT) as a component of `world` in `tests/guests/wit`.
fn componentize(wat: &str, world: &str) -> Vec<u8> {
    let mut module = wat::parse_str(wat).expect("valid WAT");
    let mut resolve = Resolve::default();
    let (package, _) = resolve
        .push_dir(guests_dir().join("wit"))
        .expect("tests/guests/wit parses");
    let world = resolve
        .select_world(&[package], Some(world))
        .expect("world exists");
    embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8)
        .expect("metadata embeds");
    ComponentEncoder::default()
        .module(&module)
        .expect("module accepted")
        .validate(true)
        .encode()
        .expect("component encodes")
}

/// Writes `bytes` to a fresh file in a temporary directory and returns its path.
pub fn write_temp(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("omnia-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("temp file");
    path
}

/// A `wasi:http` handler in hand-written WAT answering `hello from WAT http guest\n`.
pub fn wat_http_hello() -> PathBuf {
    let wat = r#"
(module
  (import "wasi:http/types@0.2.12" "[constructor]fields" (func $fields (result i32)))
  (import "wasi:http/types@0.2.12" "[constructor]outgoing-response" (func $response (param i32) (result i32)))
  (import "wasi:http/types@0.2.12" "[method]outgoing-response.body" (func $response_body (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[static]response-outparam.set"
    (func $set (param i32 i32 i32 i32 i64 i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[method]outgoing-body.write" (func $write (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[static]outgoing-body.finish" (func $finish (param i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[resource-drop]incoming-request" (func $drop_request (param i32)))
  (import "wasi:io/streams@0.2.12" "[method]output-stream.blocking-write-and-flush"
    (func $write_flush (param i32 i32 i32 i32)))
  (import "wasi:io/streams@0.2.12" "[resource-drop]output-stream" (func $drop_stream (param i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 64) "hello from WAT http guest\n")
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $at i32)
    (local.set $at (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get 3)))
    (local.get $at))
  (func (export "wasi:http/incoming-handler@0.2.12#handle") (param $request i32) (param $out i32)
    (local $response i32) (local $body i32) (local $stream i32)
    (call $drop_request (local.get $request))
    (local.set $response (call $response (call $fields)))
    (call $response_body (local.get $response) (i32.const 256))
    (local.set $body (i32.load (i32.const 260)))
    (call $set (local.get $out) (i32.const 0) (local.get $response)
      (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    (call $write (local.get $body) (i32.const 256))
    (local.set $stream (i32.load (i32.const 260)))
    (call $write_flush (local.get $stream) (i32.const 64) (i32.const 26) (i32.const 256))
    (call $drop_stream (local.get $stream))
    (call $finish (local.get $body) (i32.const 0) (i32.const 0) (i32.const 256)))
)"#;
    write_temp("wat-http-hello.wasm", &componentize(wat, "http"))
}

/// A `wasi:cli/run` command in WAT that exits with `code` through `exit-with-code`.
pub fn wat_exit_code(code: u8) -> PathBuf {
    let wat = format!(
        r#"
(module
  (import "wasi:cli/exit@0.2.12" "exit-with-code" (func $exit (param i32)))
  (func (export "wasi:cli/run@0.2.12#run") (result i32)
    (call $exit (i32.const {code}))
    (i32.const 0))
)"#
    );
    write_temp(
        &format!("wat-exit-{code}.wasm"),
        &componentize(&wat, "exit-code"),
    )
}

/// A `wasi:cli/run` command in WAT that prints `preopen <guest path>` for every directory it
/// was granted, then `note.txt: <contents>` read from the first one.
pub fn wat_fs_reader() -> PathBuf {
    let wat = r#"
(module
  (import "wasi:filesystem/preopens@0.2.12" "get-directories" (func $dirs (param i32)))
  (import "wasi:filesystem/types@0.2.12" "[method]descriptor.open-at"
    (func $open (param i32 i32 i32 i32 i32 i32 i32)))
  (import "wasi:filesystem/types@0.2.12" "[method]descriptor.read" (func $read (param i32 i64 i64 i32)))
  (import "wasi:cli/stdout@0.2.12" "get-stdout" (func $stdout (result i32)))
  (import "wasi:io/streams@0.2.12" "[method]output-stream.blocking-write-and-flush"
    (func $write (param i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (global $out (mut i32) (i32.const 0))
  (data (i32.const 100) "preopen ")
  (data (i32.const 110) "\n")
  (data (i32.const 120) "note.txt")
  (data (i32.const 130) "note.txt: ")
  (data (i32.const 150) "cannot open note.txt\n")
  (func $print (param $ptr i32) (param $len i32)
    (call $write (global.get $out) (local.get $ptr) (local.get $len) (i32.const 32)))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $at i32)
    (local.set $at (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                            (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $at) (local.get 3)))
    (local.get $at))
  (func (export "wasi:cli/run@0.2.12#run") (result i32)
    (local $list i32) (local $n i32) (local $i i32) (local $entry i32)
    (global.set $out (call $stdout))
    (call $dirs (i32.const 16))
    (local.set $list (i32.load (i32.const 16)))
    (local.set $n (i32.load (i32.const 20)))
    (block $done (loop $each
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $entry (i32.add (local.get $list) (i32.mul (local.get $i) (i32.const 12))))
      (call $print (i32.const 100) (i32.const 8))
      (call $print (i32.load offset=4 (local.get $entry)) (i32.load offset=8 (local.get $entry)))
      (call $print (i32.const 110) (i32.const 1))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $each)))
    (if (i32.eqz (local.get $n)) (then (return (i32.const 0))))
    (call $open (i32.load (local.get $list)) (i32.const 0) (i32.const 120) (i32.const 8)
      (i32.const 0) (i32.const 1) (i32.const 48))
    (if (i32.load8_u (i32.const 48))
      (then (call $print (i32.const 150) (i32.const 21)) (return (i32.const 1))))
    (call $read (i32.load (i32.const 52)) (i64.const 4096) (i64.const 0) (i32.const 64))
    (if (i32.load8_u (i32.const 64))
      (then (call $print (i32.const 150) (i32.const 21)) (return (i32.const 1))))
    (call $print (i32.const 130) (i32.const 10))
    (call $print (i32.load (i32.const 68)) (i32.load (i32.const 72)))
    (i32.const 0))
)"#;
    write_temp("wat-fs-reader.wasm", &componentize(wat, "fs-reader"))
}
