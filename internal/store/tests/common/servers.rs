//! Throwaway database servers for the storage tests (also included by the
//! binary's tests): loopback only, a free
//! port, a temporary data directory. Each guard stops its server by PID and
//! removes the directory when dropped. A missing server program fails the
//! test with the command that installs it.

#![allow(dead_code)] // included by several test binaries, each using part of it

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `cmd args…`, as `user` when running as root (database servers refuse to
/// run as root).
fn as_user(user: &str, program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.arg("-u").arg(user).arg("--").arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wait_for_port(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            panic!(
                "{what} did not listen on 127.0.0.1:{port}; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A temp dir the server's own user can enter.
fn shared_tempdir(owner: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("os-store-test-")
        .tempdir()
        .unwrap_or_else(|e| panic!("{e}"));
    if is_root() {
        run(
            Command::new("chown").arg(owner).arg(dir.path()),
            "chown test dir",
        );
    }
    dir
}

fn kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// SIGTERM, then SIGKILL if it is still there after `grace`.
fn stop_pid(pid: u32, grace: Duration) {
    kill(pid, "TERM");
    let deadline = Instant::now() + grace;
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive(pid) {
        kill(pid, "KILL");
    }
}

// ---------------------------------------------------------------- PostgreSQL

const PG_INSTALL: &str = "apt-get install -y postgresql";

fn pg_bin_dir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    dirs.retain(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file());
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop().unwrap_or_else(|| {
        panic!("PostgreSQL server programs (initdb, pg_ctl) not found under /usr/lib/postgresql; install them with: {PG_INSTALL}")
    })
}

/// A PostgreSQL cluster (trust auth, 127.0.0.1 only) with one database per
/// suite namespace.
pub struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Postgres {
    pub fn start(databases: &[&str]) -> Self {
        let bin = pg_bin_dir();
        let dir = shared_tempdir("postgres");
        let pg = Self {
            bin,
            dir,
            port: free_port(),
        };
        run(
            as_user("postgres", &pg.bin.join("initdb"))
                .arg("-D")
                .arg(pg.data())
                .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
                .arg("--locale=C.UTF-8"),
            "initdb",
        );
        pg.start_server();
        for db in databases {
            run(
                as_user("postgres", &pg.bin.join("psql"))
                    .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-q"])
                    .arg("-p")
                    .arg(pg.port.to_string())
                    .arg("-c")
                    .arg(format!("CREATE DATABASE \"{db}\"")),
                "createdb",
            );
        }
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// Start (or restart) the server on the same port and data.
    pub fn start_server(&self) {
        run(
            as_user("postgres", &self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.log())
                .args(["-w", "-t", "60", "-o"])
                .arg(format!(
                    "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c full_page_writes=off -c max_connections=200",
                    self.port,
                    self.dir.path().display()
                ))
                .arg("start")
                .stdout(Stdio::null()),
            "pg_ctl start",
        );
        wait_for_port(self.port, "postgres", &self.log());
    }

    /// The postmaster's PID, from its PID file.
    fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// Stop the server (fast shutdown), keeping its data.
    pub fn stop_server(&self) {
        if let Some(pid) = self.pid() {
            // SIGINT is PostgreSQL's "fast" shutdown.
            kill(pid, "INT");
            let deadline = Instant::now() + Duration::from_secs(30);
            while alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if alive(pid) {
                kill(pid, "KILL");
            }
        }
    }

    pub fn dsn(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop_server();
    }
}

// ------------------------------------------------------------------ MariaDB

const MARIADB_INSTALL: &str = "apt-get install -y mariadb-server";

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/usr/bin", "/sbin"].map(PathBuf::from));
    names
        .iter()
        .flat_map(|n| dirs.iter().map(move |d| d.join(n)))
        .find(|p| p.is_file())
}

/// A MariaDB (or MySQL) server on 127.0.0.1 with a password user that owns
/// one database per suite namespace.
pub struct MariaDb {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

pub const MARIADB_USER: &str = "streamer";
pub const MARIADB_PASSWORD: &str = "s3cret-pw";

impl MariaDb {
    pub fn start(databases: &[&str]) -> Self {
        let missing =
            || panic!("MariaDB server programs not found; install them with: {MARIADB_INSTALL}");
        let server = find_program(&["mariadbd", "mysqld"]).unwrap_or_else(missing);
        let install =
            find_program(&["mariadb-install-db", "mysql_install_db"]).unwrap_or_else(missing);
        let client = find_program(&["mariadb", "mysql"]).unwrap_or_else(missing);
        let dir = shared_tempdir("mysql");
        let data = dir.path().join("data");
        let mut install_cmd = Command::new(&install);
        install_cmd
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=socket", "--skip-test-db"]);
        if is_root() {
            install_cmd.arg("--user=mysql");
        }
        run(&mut install_cmd, "mariadb-install-db");
        let port = free_port();
        let socket = dir.path().join("mysql.sock");
        let log = dir.path().join("error.log");
        let mut cmd = Command::new(&server);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!(
                "--pid-file={}",
                dir.path().join("mariadbd.pid").display()
            ))
            .arg(format!("--log-error={}", log.display()))
            .arg(format!("--port={port}"))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--innodb-flush-log-at-trx-commit=0",
                "--max-connections=300",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if is_root() {
            cmd.arg("--user=mysql");
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", server.display()));
        let me = Self { child, dir, port };
        wait_for_port(port, "mariadbd", &log);
        let mut sql =
            format!("CREATE USER '{MARIADB_USER}'@'%' IDENTIFIED BY '{MARIADB_PASSWORD}';");
        for db in databases {
            sql.push_str(&format!(
                "CREATE DATABASE `{db}` CHARACTER SET utf8mb4; GRANT ALL ON `{db}`.* TO '{MARIADB_USER}'@'%';"
            ));
        }
        run(
            Command::new(&client)
                .arg(format!("--socket={}", socket.display()))
                .args(["-uroot", "-e"])
                .arg(sql),
            "creating the test user and databases",
        );
        me
    }

    pub fn dsn(&self, db: &str) -> String {
        format!(
            "mysql://{MARIADB_USER}:{MARIADB_PASSWORD}@127.0.0.1:{}/{db}",
            self.port
        )
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        stop_pid(self.child.id(), Duration::from_secs(30));
        let _ = self.child.wait();
        // The data dir belongs to the server's user; TempDir removes it as root.
        let _ = &self.dir;
    }
}

// ------------------------------------------------------- MongoDB wire server

/// A MongoDB wire-protocol server (Node.js, installed into
/// `.tools/mongo-wire` by `build/test-deps.sh`), in memory or backed by files
/// in a directory. It speaks the protocol the driver uses; it is not mongod.
pub struct MongoWire {
    child: Option<Child>,
    pub port: u16,
    dir: Option<PathBuf>,
}

impl MongoWire {
    /// An in-memory server on a free port.
    pub fn start() -> Self {
        Self::launch(free_port(), None)
    }

    /// A server keeping its documents in `dir`: [`MongoWire::stop_server`]
    /// then [`MongoWire::start_server`] brings it back with its data.
    pub fn start_in(dir: &Path) -> Self {
        Self::launch(free_port(), Some(dir.to_path_buf()))
    }

    fn launch(port: u16, dir: Option<PathBuf>) -> Self {
        let mut me = Self {
            child: None,
            port,
            dir,
        };
        me.start_server();
        me
    }

    /// (Re)start the server process on the same port (and directory).
    pub fn start_server(&mut self) {
        // The workspace root: the nearest ancestor holding Cargo.lock.
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = manifest
            .ancestors()
            .find(|d| d.join("Cargo.lock").is_file())
            .unwrap_or(manifest);
        let tools = root.join(".tools/mongo-wire");
        let install = "build/test-deps.sh (installs node/npm if needed and runs npm install in .tools/mongo-wire)";
        let node = find_program(&["node", "nodejs"]).unwrap_or_else(|| {
            panic!(
                "node not found; install with: apt-get install -y nodejs npm, then run {install}"
            )
        });
        assert!(
            tools.join("node_modules/@push.rocks/smartmongo").is_dir()
                && tools.join("server.mjs").is_file(),
            "MongoDB wire test server not installed in {}; run {install}",
            tools.display()
        );
        let port = self.port;
        let log = std::env::temp_dir().join(format!("os-store-mongo-wire-{port}.log"));
        let log_file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}"));
        let mut cmd = Command::new(node);
        cmd.arg(tools.join("server.mjs")).arg(port.to_string());
        if let Some(dir) = &self.dir {
            cmd.arg(dir);
        }
        let child = cmd
            .current_dir(&tools)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting the MongoDB wire server: {e}"));
        self.child = Some(child);
        wait_for_port(port, "mongo wire server", &log);
        let _ = std::fs::remove_file(&log);
    }

    /// Stop the server process (SIGTERM, then SIGKILL after 5 s).
    pub fn stop_server(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_pid(child.id(), Duration::from_secs(5));
            let _ = child.wait();
        }
    }

    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }
}

impl Drop for MongoWire {
    fn drop(&mut self) {
        self.stop_server();
    }
}
