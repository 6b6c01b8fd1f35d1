//! Route slots: every route has a number for its whole life in a run, and a bit in the masks
//! that containers' route decisions and pending messages carry.

/// Routes at most in one run of spout: a container's route decisions are a bit per route.
pub const MAX_ROUTES: usize = 64;

/// The bit that names route `route` in the masks of route decisions; none past [`MAX_ROUTES`].
pub fn route_bit(route: usize) -> u64 {
    u32::try_from(route).ok().and_then(|r| 1u64.checked_shl(r)).unwrap_or(0)
}
