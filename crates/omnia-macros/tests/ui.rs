//! Misuse of `runtime!` is a compile error that names the offending entry.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
