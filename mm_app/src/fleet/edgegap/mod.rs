//! Groundwork for the Edgegap fleet backend: how Edgegap's HTTP answers map to typed errors, and
//! which of them are retried. The HTTP client and the offline API replica build on this.

pub mod error;
pub mod retry;
