//! # workload: the WebStone-like service and the load driver
//!
//! - [`cgi`]: the reply generator, `GET /cgi-bin/webstone?size=N` answering N
//!   fresh random bytes with `X-Coral-Digest` and `X-Coral-Served-By`.
//!   Two application modes ([`cgi::App`]): in process, or (`cgi`, the
//!   paper's) a `webstone-cgi` process started for every request.
//! - [`cgi_program`]: what the `webstone-cgi` program writes (CGI/1.1).
//! - [`cgi_gateway`]: the server side of CGI/1.1: meta-variables, running
//!   the program (timeout, reaping) and turning its output into a response.
//! - [`driver`]: N closed-loop clients that record every request.
//! - [`logging`]: how every program of the kit logs (`tracing`, `RUST_LOG`).
//! - [`records`]: the `requests.csv` row ([`records::RequestRecord`]).
//! - [`summary`]: `summary.json` computed from the rows ([`summary::Summary`]).
//! - [`webstone`]: the request and reply vocabulary all three modes share
//!   (path, headers, `size`, body and digest, refusals).
//!
//! Binaries (see `--help`):
//! - `webstone-server --listen 0.0.0.0:80 --served-by server-a [--max-size BYTES]
//!   [--max-head BYTES] [--log-requests] [--app inproc|cgi] [--cgi-program PATH]
//!   [--cgi-timeout-ms MS]`: prints `listening on ADDR` when ready.
//! - `webstone-cgi`: the CGI program (`QUERY_STRING=size=100
//!   REQUEST_METHOD=GET webstone-cgi` prints one CGI response).
//! - `coral-load --url http://192.0.2.10/cgi-bin/webstone --clients 8
//!   --duration-s 10 --warmup-s 2 --out DIR`: writes `DIR/requests.csv` and
//!   `DIR/summary.json`, prints a one-line summary.

#![warn(missing_docs)]

pub mod cgi;
pub mod cgi_gateway;
pub mod cgi_program;
pub mod driver;
pub mod logging;
pub mod records;
pub mod summary;
pub mod webstone;
