omnia::runtime!({
    "http": 42,
});

fn main() {}
