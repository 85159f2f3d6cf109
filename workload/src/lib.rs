//! # workload: the WebStone-like service and the load driver
//!
//! - [`cgi`]: the reply generator, `GET /cgi-bin/webstone?size=N` answering N
//!   fresh random bytes with `X-Coral-Digest` and `X-Coral-Served-By`.
//! - [`driver`]: N closed-loop clients that record every request.
//! - [`records`]: the `requests.csv` row ([`records::RequestRecord`]).
//! - [`summary`]: `summary.json` computed from the rows ([`summary::Summary`]).

#![warn(missing_docs)]

pub mod cgi;
pub mod driver;
pub mod records;
pub mod summary;
