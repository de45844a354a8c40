//! Applications of many guests (`omnia run omnia.toml`): what routing among many guests costs a
//! request, how long an application takes to start, and the memory each idle guest adds.
//!
//! Every guest is the Rust `http-hello` (it answers any path), so the figures are the
//! runtime's: one guest run on its own (`omnia run http-hello.wasm`) against the same guest
//! routed at `/g25` among 50 (`routes.http = ["/gN"]` each); start-up until the last guest of
//! 20 answers, with the compile cache off (cold) and warm; RSS of 50 idle guests against 1.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;

use super::{Bench, Load, free_addr, median, omnia_run, rss_kib, start, wrk_request};

/// `dir/omnia.toml` with `n` guests `g0`..`g{n-1}`, each `guest` at `/gN`.
fn manifest(dir: &Path, guest: &Path, n: usize) -> Result<PathBuf> {
    let mut text = String::new();
    for i in 0..n {
        let _ = write!(
            text,
            "[[guest]]\nid = \"g{i}\"\nsource.path = \"{}\"\nroutes.http = [\"/g{i}\"]\n\n",
            guest.display()
        );
    }
    let dir = dir.join(format!("app-{n}"));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("omnia.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

impl Bench {
    /// The application section: routing cost, start-up, memory per idle guest.
    pub(super) fn application(&mut self, guest: &Path) -> Result<()> {
        let omnia = self.args.omnia.clone();
        let fifty = manifest(&self.work, guest, 50)?;
        let twenty = manifest(&self.work, guest, 20)?;
        let one = manifest(&self.work, guest, 1)?;

        self.line("\n### Applications of many guests (Rust `http-hello` each)\n");
        self.line(
            "One guest on its own against the same guest routed at `/g25` among 50 \
             (`routes.http = [\"/gN\"]` each), same binary, runs alternating:\n",
        );
        self.line("| contender | c | req/s | p50 ms | p99 ms | req/s vs alone |");
        self.line("|---|---:|---:|---:|---:|---:|");
        let alone_addr = free_addr();
        let alone = start(omnia_run(&omnia, guest, &alone_addr, None), alone_addr, "/")?;
        let app_addr = free_addr();
        let app = start(omnia_run(&omnia, &fifty, &app_addr, None), app_addr, "/g25")?;
        for c in [1, 64] {
            let mut runs: [Vec<Load>; 2] = [Vec::new(), Vec::new()];
            for _ in 0..self.args.runs {
                for (i, url) in [
                    format!("http://{}/", alone.addr),
                    format!("http://{}/g25/", app.addr),
                ]
                .iter()
                .enumerate()
                {
                    runs[i].push(wrk_request(
                        &self.args.wrk,
                        url,
                        None,
                        c,
                        self.args.seconds,
                    )?);
                }
            }
            let [alone_load, app_load] = runs.map(|r| Load::median(&r));
            for (name, load) in [("alone", alone_load), ("/g25 of 50", app_load)] {
                self.line(&format!(
                    "| {name} | {c} | {:.0} | {:.2} | {:.2} | {:.2}x |",
                    load.rps,
                    load.p50_ms,
                    load.p99_ms,
                    load.rps / alone_load.rps
                ));
            }
        }
        drop((alone, app));
        self.line(&format!(
            "\nCommand lines: `{}` and `{}` (the manifest: 50 `[[guest]]`s).",
            super::command_line(&omnia_run(&omnia, guest, "ADDR", None)),
            super::command_line(&omnia_run(&omnia, &fifty, "ADDR", None)),
        ));

        self.line("\nStart-up, until the last guest answers (median of runs):\n");
        self.line("| application | compile cache | seconds |");
        self.line("|---|---|---:|");
        let cache = self.work.join("app-cache");
        for (name, manifest, last) in [("1 guest", &one, "/g0"), ("20 guests", &twenty, "/g19")] {
            for cached in [false, true] {
                let cache = cached.then_some(cache.as_path());
                if cached {
                    // Fill the cache once.
                    let addr = free_addr();
                    drop(start(
                        omnia_run(&omnia, manifest, &addr, cache),
                        addr,
                        last,
                    )?);
                }
                let mut seconds = Vec::new();
                for _ in 0..self.args.runs {
                    let addr = free_addr();
                    let server = start(omnia_run(&omnia, manifest, &addr, cache), addr, last)?;
                    seconds.push(server.started_in.as_secs_f64());
                }
                self.line(&format!(
                    "| {name} | {} | {:.2} |",
                    if cached { "warm" } else { "off" },
                    median(seconds)
                ));
            }
        }

        let rss = |manifest: &Path, last: &str| -> Result<u32> {
            let addr = free_addr();
            let server = start(omnia_run(&omnia, manifest, &addr, None), addr, last)?;
            std::thread::sleep(Duration::from_millis(300));
            Ok(rss_kib(server.child.id()).unwrap_or(0))
        };
        let (rss_one, rss_fifty) = (rss(&one, "/g0")?, rss(&fifty, "/g49")?);
        self.line(&format!(
            "\nRSS idle: 1 guest {:.1} MiB, 50 guests {:.1} MiB: {:.0} KiB per additional idle \
             guest (each compiled separately, though all are the same file).",
            f64::from(rss_one) / 1024.0,
            f64::from(rss_fifty) / 1024.0,
            f64::from(rss_fifty.saturating_sub(rss_one)) / 49.0
        ));
        Ok(())
    }
}
