omnia_macros::runtime!({});

fn main() {}
