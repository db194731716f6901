//! The production profile with real servers: several `loyalty` nodes on one
//! PostgreSQL, Redis for the shared rate limit, outages of each, and skewed
//! node clocks. Needs `LOYALTY_TEST_PG_URL` (and redis-server, faketime and
//! the PostgreSQL server binaries on the machine); without them every test
//! says loudly that it was skipped — and fails instead under `LOYALTY_CI=1`.

#[path = "../common/mod.rs"]
mod common;

mod servers;

mod events;
mod migrate;
mod nodes;
mod outages;
mod revocation;
mod tls;
mod wallet;
