//! The error of a host function whose WIT interface has an error type of its own.
//!
//! Such a function ends one of three ways: a value, the interface's error (which the guest
//! gets, as a WIT `result`'s `err`), or a trap (a bad resource handle: the guest broke the
//! contract, and its call ends). Bindings generated with `trappable_error_type` have every
//! host function return one error type and convert it once, in `convert_error`; [`HostError`]
//! is that type for every capability (modelled on wasmtime-wasi's `TrappableError`): the
//! capability's own error, or a trap.

use wasmtime::component::ResourceTableError;

/// An error of a host function: the interface's error `E`, returned to the guest, or a trap.
#[derive(Debug)]
pub enum HostError<E> {
    /// Returned to the guest, as the interface's WIT error.
    Guest(E),
    /// Traps the guest.
    Trap(wasmtime::Error),
}

/// The result of a host function whose errors are [`HostError`]s.
pub type HostResult<T, E> = Result<T, HostError<E>>;

impl<E> HostError<E> {
    /// The guest's error in its WIT form (`to_wit`), or the trap: what a bindgen
    /// `convert_error` returns.
    pub fn convert<W>(self, to_wit: impl FnOnce(E) -> W) -> wasmtime::Result<W> {
        match self {
            Self::Guest(err) => Ok(to_wit(err)),
            Self::Trap(trap) => Err(trap),
        }
    }
}

/// An interface's error, as a capability's host functions return it to the guest: marks the
/// type so that `?` turns it into [`HostError::Guest`].
pub trait GuestError {}

impl<E: GuestError> From<E> for HostError<E> {
    fn from(err: E) -> Self {
        Self::Guest(err)
    }
}

/// A resource handle the guest does not hold (or of the wrong type) traps.
impl<E> From<ResourceTableError> for HostError<E> {
    fn from(err: ResourceTableError) -> Self {
        Self::Trap(err.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl GuestError for &str {}

    #[test]
    fn the_guest_gets_its_error_and_a_trap_stays_a_trap() {
        let guest: HostError<&str> = "no such key".into();
        assert_eq!(guest.convert(str::len).ok(), Some(11));
        let trap: HostError<&str> = ResourceTableError::NotPresent.into();
        assert!(trap.convert(str::len).is_err());
    }
}
