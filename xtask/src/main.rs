//! Project tasks: smoke, codegen check, bench

fn main() {}
