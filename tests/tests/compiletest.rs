//! Compile-time behaviour of `#[taskq::task]`: what it accepts, and how it reports mistakes.
//!
//! Regenerate the expected messages with
//! `TRYBUILD=overwrite cargo test -p taskq-tests --test compiletest`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/fail/*.rs");
    t.pass("ui/pass/*.rs");
}
