//! `wake`: the validator node binary.
fn main() {}
