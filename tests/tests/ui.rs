//! Compile tests of the macros: `ui/pass/*.rs` must compile, and each
//! `ui/fail/<macro>/<mistake>.rs` must fail with exactly the errors in the
//! `.stderr` beside it. Bless changes with `TRYBUILD=overwrite` and review
//! every `.stderr` diff by eye.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("ui/pass/*.rs");
    cases.compile_fail("ui/fail/*/*.rs");
}
