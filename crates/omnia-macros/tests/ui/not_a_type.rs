omnia_macros::runtime!({
    "http": 42,
});

fn main() {}
