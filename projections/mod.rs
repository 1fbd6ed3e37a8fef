//! The standard projections, one file each, and the registry that lists them.
//!
//! Adding a projection: write `projections/my_view.rs` implementing
//! [`crate::projection::Projection`], then add one `mod` line and one line to [`registry`].
//! Every registered projection gets the shared test kit in `tests/projection_kit.rs` for free.
//! See `projections/README.md` for a worked example. The pairing book several of them read (who
//! held which pairing when) is kept once by the engine: `crate::projection::book`.

pub mod facts;

pub mod activity_totals;
pub mod care_plans;
pub mod census;
pub mod claims;
pub mod coverage;
pub mod difficulties;
pub mod escalations;
pub mod funds;
pub mod pairings;
pub mod placements;
pub mod student_aid;

use crate::projection::{AnyProjection, Registered};

/// Every projection, in the order `carelog projections` lists them.
pub fn registry() -> Vec<Box<dyn AnyProjection>> {
    vec![
        Registered::<pairings::Pairings>::boxed(),
        Registered::<activity_totals::ActivityTotals>::boxed(),
        Registered::<funds::Funds>::boxed(),
        Registered::<escalations::Escalations>::boxed(),
        Registered::<difficulties::Difficulties>::boxed(),
        Registered::<student_aid::StudentAid>::boxed(),
        Registered::<placements::Placements>::boxed(),
        Registered::<care_plans::CarePlans>::boxed(),
        Registered::<census::Census>::boxed(),
        Registered::<coverage::Coverage>::boxed(),
        Registered::<claims::Claims>::boxed(),
    ]
}
