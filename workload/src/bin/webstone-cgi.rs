//! `webstone-cgi`: the WebStone reply generator as a CGI/1.1 program, started
//! once per request by `webstone-server --app cgi` or a CoRAL node with
//! `app = "cgi"` (see `workload::cgi_program` for what it reads and writes).

use std::process::ExitCode;
use tracing::error;
use workload::{cgi, cgi_program, logging};

const USAGE: &str = "\
webstone-cgi: the WebStone reply generator as a CGI/1.1 program (RFC 3875).

A web server runs it once per request with the CGI meta-variables in its
environment; it writes one CGI response on stdout and exits:
  REQUEST_METHOD   GET (else Status: 405); required
  QUERY_STRING     size=N, the reply size in bytes (default 1024)
  CORAL_SERVED_BY  value of X-Coral-Served-By (default: the system host name)
  CORAL_MAX_SIZE   largest size answered (default 16777216; above: Status: 413)
Output: [Status:] Content-Type, Content-Length, X-Coral-Digest (hex sha256 of
the body), X-Coral-Served-By, a blank line, N fresh random bytes. A bad
meta-variable gets Status: 400 and a one-line reason.

By hand:  QUERY_STRING=size=100 REQUEST_METHOD=GET webstone-cgi
Options:  -h, --help     this text
          -V, --version  the version
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {}
        Some("-h" | "--help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some("-V" | "--version") => {
            println!("webstone-cgi {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            // Logging is set up only when there is something to say: the
            // program starts once per request.
            logging::init();
            error!(
                "unexpected argument {other:?}: the request comes in the environment \
                 (see --help)"
            );
            return ExitCode::from(2);
        }
    }
    let reply = cgi_program::respond(|name| std::env::var_os(name), &mut cgi::new_rng());
    let mut out = std::io::stdout().lock();
    match reply.write_to(&mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            logging::init();
            error!("cannot write the response: {e}");
            ExitCode::FAILURE
        }
    }
}
