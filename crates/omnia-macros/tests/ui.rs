//! Misuse of `runtime!` is a compile error that names the offending entry. (The macro is used
//! as `omnia_macros::runtime!` here so that the cases build without omnia itself; users write
//! `omnia::runtime!`, the same macro re-exported.)

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
