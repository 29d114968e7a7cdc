//! A private PostgreSQL server on a free loopback port, in a temporary directory, for tests that
//! stop the database under a running app (the machine's own server is never stopped by them).
//! Runs `initdb` and `pg_ctl` from the installed PostgreSQL, as the `postgres` user when the
//! tests run as root (PostgreSQL refuses to run as root).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct PrivatePostgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

fn as_postgres(program: &Path) -> Command {
    let root = std::process::Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false);
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(mut command: Command, what: &str) {
    let output = command.stdout(Stdio::piped()).stderr(Stdio::piped()).output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl PrivatePostgres {
    /// A new server, started.
    pub fn start() -> Self {
        let version = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed under /usr/lib/postgresql")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .max()
            .expect("a PostgreSQL version");
        let bin = PathBuf::from(format!("/usr/lib/postgresql/{version}/bin"));
        let dir = std::env::temp_dir().join(format!("wg-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status();
        let port = super::process::free_port();
        let server = Self { port, dir, bin };
        let mut initdb = as_postgres(&server.bin.join("initdb"));
        initdb.arg("-D").arg(server.data()).args(["--auth=trust", "-U", "postgres", "--no-sync"]);
        run(initdb, "initdb");
        server.start_again();
        server
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Starts the server (again), waiting until it accepts connections.
    pub fn start_again(&self) {
        let mut pg_ctl = as_postgres(&self.bin.join("pg_ctl"));
        let options =
            format!("-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off", self.port, self.dir.display());
        pg_ctl.arg("-D").arg(self.data()).arg("-l").arg(self.dir.join("log")).args(["-o", &options, "-w", "-t", "30", "start"]);
        run(pg_ctl, "pg_ctl start");
    }

    /// Stops the server at once (open connections are cut).
    pub fn stop(&self) {
        let mut pg_ctl = as_postgres(&self.bin.join("pg_ctl"));
        pg_ctl.arg("-D").arg(self.data()).args(["-m", "immediate", "-w", "-t", "30", "stop"]);
        run(pg_ctl, "pg_ctl stop");
    }

    /// Creates database `name` and returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        use sqlx::Connection as _;
        let mut admin = sqlx::PgConnection::connect(&self.url("postgres")).await.expect("the private server answers");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap();
        self.url(name)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let mut pg_ctl = as_postgres(&self.bin.join("pg_ctl"));
        pg_ctl.arg("-D").arg(self.data()).args(["-m", "immediate", "stop"]);
        let _ = pg_ctl.stdout(Stdio::null()).stderr(Stdio::null()).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
