//! How many threads a kernel's matrix products use.
//!
//! A product splits its work over all of rayon's compute threads, except inside a
//! [`with_serial_products`] scope: there it runs on the calling thread alone. A caller that
//! runs several independent computations on the compute threads at once (data-parallel
//! replicas, one per thread) opens that scope on each, so the cores work on different
//! computations instead of meeting at every product. Element-wise passes still split over
//! the pool, so a thread whose own work is done helps the others with theirs.

use std::cell::Cell;

thread_local! {
    /// Whether this thread's products stay on this thread.
    static SERIAL_PRODUCTS: Cell<bool> = const { Cell::new(false) };
}

/// Runs `work` with every matrix product it makes on this thread kept on this thread; the
/// setting in force before is back when it returns (or unwinds).
pub fn with_serial_products<R>(work: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            SERIAL_PRODUCTS.with(|flag| flag.set(self.0));
        }
    }
    let _restore = Restore(SERIAL_PRODUCTS.with(|flag| flag.replace(true)));
    work()
}

/// Whether the calling thread is inside a [`with_serial_products`] scope.
pub(crate) fn serial_products() -> bool {
    SERIAL_PRODUCTS.with(Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_holds_inside_and_is_undone_after() {
        assert!(!serial_products());
        with_serial_products(|| {
            assert!(serial_products());
            with_serial_products(|| assert!(serial_products()));
            assert!(serial_products());
        });
        assert!(!serial_products());
    }
}
