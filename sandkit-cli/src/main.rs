//! The sandkit command-line tool

fn main() {}
