//! The HTTP route table (being written).
