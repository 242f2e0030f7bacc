//! Integration and compile-fail tests for `sockets`; the tests live in `tests/tests/`.
