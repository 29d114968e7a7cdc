//! The gateway's configuration: one typed struct ([`model`]), read from the environment (and a
//! `.env` file if present) and validated once at start ([`load`]).

mod load;
pub mod model;

pub use load::development_jwt_secret;
pub use model::{Config, ConfigError, DatabaseConfig, EventsConfig, InboundConfig, PollConfig, RateLimits, TwilioConfig, WorkerConfig};
