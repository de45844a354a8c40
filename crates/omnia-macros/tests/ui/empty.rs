omnia::runtime!({});

fn main() {}
