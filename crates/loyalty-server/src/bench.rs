//! `loyalty bench`: a load generator against a running server. N concurrent
//! clients each open a rating slip and complete it, over and over; the
//! completion latency (the request that writes the ledger) is reported as
//! throughput and p50 / p99 / max.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Base URL, e.g. `http://127.0.0.1:8080`; several (comma-separated)
    /// spread the clients round-robin over several nodes.
    pub url: String,
    /// A token with players:write, tables:write and ratingslip:write.
    pub token: String,
    /// Client counts to run, one after the other.
    pub clients: Vec<usize>,
    /// How long each run lasts.
    pub duration: Duration,
    /// What to drive: `complete` (open + complete slips), `reward`, or
    /// `redeem` (hold + settle).
    pub workload: String,
    /// Players shared by the clients (client i uses player i mod N), for
    /// hot accounts; 0 gives each client its own player.
    pub players: usize,
}

/// One run's numbers.
#[derive(Debug, Clone)]
pub struct BenchResult {
    /// Concurrent clients.
    pub clients: usize,
    /// Measured operations.
    pub ops: usize,
    /// Failed requests.
    pub errors: usize,
    /// Operations per second.
    pub ops_per_s: f64,
    /// Latency percentiles, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Worst, ms.
    pub max_ms: f64,
}

/// One client of the `complete` workload: open a slip (30 minutes of play)
/// and complete it, again and again; the completion is what is timed.
async fn complete_client(
    client: &reqwest::Client,
    cfg: &BenchConfig,
    i: usize,
    shared: Option<String>,
    table_id: &str,
    server_offset: jiff::SignedDuration,
    deadline: Instant,
) -> anyhow::Result<(Vec<Duration>, usize)> {
    let player_id = match shared {
        Some(p) => p,
        None => new_player(client, cfg, i).await?,
    };
    let mut lat = Vec::new();
    let mut errors = 0usize;
    while Instant::now() < deadline {
        // Half an hour of play by the server's clock (which test mode may
        // have moved).
        let start = (jiff::Timestamp::now() + server_offset - jiff::SignedDuration::from_mins(30))
            .to_string();
        let body = json!({"player_id": player_id, "table_id": table_id, "average_bet": "25", "started_at": start});
        let (s, slip) = post(client, cfg, "/v1/rating-slips", body).await?;
        if s != 201 {
            errors += 1;
            continue;
        }
        let id = slip["id"].as_str().unwrap_or_default();
        let t = Instant::now();
        let (s, _) = post(
            client,
            cfg,
            &format!("/v1/rating-slips/{id}/complete"),
            json!({}),
        )
        .await?;
        if s == 200 {
            lat.push(t.elapsed());
        } else {
            errors += 1;
        }
    }
    Ok((lat, errors))
}

/// One client of the `reward` workload: its own supervisor (created with the
/// admin token) grants manual rewards to its own player. Run the server with
/// a high `--reward-rate-limit`, or most requests are (correctly) refused.
async fn reward_client(
    client: &reqwest::Client,
    cfg: &BenchConfig,
    i: usize,
    shared: Option<String>,
    deadline: Instant,
) -> anyhow::Result<(Vec<Duration>, usize)> {
    let (staff_cfg, staff_id, player_id) = supervisor_and_player(client, cfg, i, shared).await?;
    let mut lat = Vec::new();
    let mut errors = 0usize;
    let mut n = 0u64;
    while Instant::now() < deadline {
        n += 1;
        let body = json!({"player_id": player_id, "points": 5, "staff_id": staff_id,
                          "reason": format!("bench reward number {n}")});
        let t = Instant::now();
        let (s, _) = post(client, &staff_cfg, "/v1/loyalty/manual-rewards", body).await?;
        if s == 201 {
            lat.push(t.elapsed());
        } else {
            errors += 1;
        }
    }
    Ok((lat, errors))
}

/// One client of the `redeem` workload: its own supervisor (created with
/// the admin token) funds its own player once, then the client holds one
/// point for the shared merchant and captures it, again and again; the pair
/// (hold + settle, two durable writes) is what is timed.
async fn redeem_client(
    client: &reqwest::Client,
    cfg: &BenchConfig,
    i: usize,
    shared: Option<String>,
    merchant_id: &str,
    deadline: Instant,
) -> anyhow::Result<(Vec<Duration>, usize)> {
    let (staff_cfg, staff_id, player_id) = supervisor_and_player(client, cfg, i, shared).await?;
    let (s, funded) = post(
        client,
        &staff_cfg,
        "/v1/loyalty/manual-rewards",
        json!({"player_id": player_id, "points": 10_000, "staff_id": staff_id,
               "reason": "bench redemption budget"}),
    )
    .await?;
    if s != 201 {
        bail!("funding the bench player failed ({s}): {funded}");
    }
    let mut lat = Vec::new();
    let mut errors = 0usize;
    while Instant::now() < deadline {
        let t = Instant::now();
        let body = json!({"player_id": player_id, "merchant_id": merchant_id, "amount": 1,
                          "reason": "bench comp"});
        let (s, escrow) = post(client, &staff_cfg, "/v1/escrows", body).await?;
        if s != 201 {
            errors += 1;
            continue;
        }
        let id = escrow["id"].as_str().unwrap_or_default();
        let (s, _) = post(
            client,
            &staff_cfg,
            &format!("/v1/escrows/{id}/settle"),
            json!({}),
        )
        .await?;
        if s == 200 {
            lat.push(t.elapsed());
        } else {
            errors += 1;
        }
    }
    Ok((lat, errors))
}

/// What the read workloads read from: existing players (with their names)
/// and a staff member who wrote ledger entries.
#[derive(Debug, Clone, Default)]
struct ReadTargets {
    players: Vec<(String, String)>,
    staff_id: String,
}

async fn read_targets(client: &reqwest::Client, cfg: &BenchConfig) -> anyhow::Result<ReadTargets> {
    let (s, page) = get(client, cfg, "/v1/players?limit=1000").await?;
    if s != 200 {
        bail!("listing players failed ({s}): {page}");
    }
    let players: Vec<(String, String)> = page["players"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                p["id"].as_str()?.to_string(),
                p["display_name"].as_str()?.to_string(),
            ))
        })
        .collect();
    if players.is_empty() {
        bail!("the read workloads need players with entries (loyalty seed)");
    }
    let (_, entries) = get(client, cfg, "/v1/ledger?limit=1").await?;
    let staff_id = entries["entries"][0]["staff_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    Ok(ReadTargets { players, staff_id })
}

/// One client of a read workload: `balance` (a player's loyalty), `ledger`
/// (a 50-entry page of a player's ledger), `audit` (a 50-entry audit search
/// by staff member) or `search` (a player search by name substring), over
/// the existing players in turn.
async fn read_client(
    client: &reqwest::Client,
    cfg: &BenchConfig,
    kind: &str,
    i: usize,
    targets: &ReadTargets,
    deadline: Instant,
) -> anyhow::Result<(Vec<Duration>, usize)> {
    let mut lat = Vec::new();
    let mut errors = 0usize;
    let mut n = i;
    while Instant::now() < deadline {
        n += 7;
        let (id, name) = &targets.players[n % targets.players.len()];
        let path = match kind {
            "balance" => format!("/v1/players/{id}/loyalty"),
            "ledger" => format!("/v1/players/{id}/ledger?limit=50"),
            "audit" => format!("/v1/ledger?staff_id={}&limit=50", targets.staff_id),
            _ => {
                // A distinctive part of the name: its last word.
                let word = name.rsplit(' ').next().unwrap_or(name);
                format!("/v1/players?q={}&limit=20", urlencode(word))
            }
        };
        let t = Instant::now();
        let s = get_unparsed(client, cfg, &path).await?;
        if s == 200 {
            lat.push(t.elapsed());
        } else {
            errors += 1;
        }
    }
    Ok((lat, errors))
}

fn urlencode(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn send_get(
    c: &reqwest::Client,
    cfg: &BenchConfig,
    path: &str,
) -> anyhow::Result<reqwest::Response> {
    Ok(c.get(format!("{}{path}", cfg.url))
        .bearer_auth(&cfg.token)
        .send()
        .await?)
}

async fn get(c: &reqwest::Client, cfg: &BenchConfig, path: &str) -> anyhow::Result<(u16, Value)> {
    let resp = send_get(c, cfg, path).await?;
    let status = resp.status().as_u16();
    let v = resp.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, v))
}

/// A GET whose whole body is received but not parsed: a read workload
/// times the server, and on a small machine parsing every 40 KB ledger page
/// into a JSON tree took CPU from the server it measures.
async fn get_unparsed(c: &reqwest::Client, cfg: &BenchConfig, path: &str) -> anyhow::Result<u16> {
    let resp = send_get(c, cfg, path).await?;
    let status = resp.status().as_u16();
    resp.bytes().await?;
    Ok(status)
}

/// A new player's id.
async fn new_player(
    client: &reqwest::Client,
    cfg: &BenchConfig,
    i: usize,
) -> anyhow::Result<String> {
    let (s, player) = post(
        client,
        cfg,
        "/v1/players",
        json!({"display_name": format!("bench {i}")}),
    )
    .await?;
    if s != 201 {
        bail!("creating a bench player failed ({s}): {player}");
    }
    Ok(player["id"].as_str().unwrap_or_default().to_string())
}

/// A client's own supervisor (made with the admin token) and player (its
/// own, or the shared one): the supervisor's settings, id, and the
/// player's id.
async fn supervisor_and_player(
    client: &reqwest::Client,
    cfg: &BenchConfig,
    i: usize,
    shared: Option<String>,
) -> anyhow::Result<(BenchConfig, String, String)> {
    let (s, staff) = post(
        client,
        cfg,
        "/v1/staff",
        json!({"name": format!("bench staff {i}"), "role": "supervisor"}),
    )
    .await?;
    if s != 201 {
        bail!("creating bench staff needs an admin token ({s}): {staff}");
    }
    let staff_cfg = BenchConfig {
        token: staff["token"].as_str().unwrap_or_default().to_string(),
        ..cfg.clone()
    };
    let staff_id = staff["id"].as_str().unwrap_or_default().to_string();
    let player_id = match shared {
        Some(p) => p,
        None => new_player(client, cfg, i).await?,
    };
    Ok((staff_cfg, staff_id, player_id))
}

async fn post(
    c: &reqwest::Client,
    cfg: &BenchConfig,
    path: &str,
    body: Value,
) -> anyhow::Result<(u16, Value)> {
    let resp = c
        .post(format!("{}{path}", cfg.url))
        .bearer_auth(&cfg.token)
        .json(&body)
        .send()
        .await?;
    let status = resp.status().as_u16();
    let v = resp.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, v))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// Runs every configured client count and prints a table.
pub async fn run(cfg: BenchConfig) -> anyhow::Result<Vec<BenchResult>> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let first = BenchConfig {
        url: cfg.url.split(',').next().unwrap_or_default().to_string(),
        ..cfg.clone()
    };
    let (s, table) = post(
        &client,
        &first,
        "/v1/tables",
        json!({"name": "bench", "game_type": "blackjack", "house_edge": "1.5", "average_rounds_per_hour": 60}),
    )
    .await
    .context("cannot reach the server")?;
    if s != 201 {
        bail!("creating the bench table failed ({s}): {table}");
    }
    let table_id = table["id"].as_str().unwrap_or_default().to_string();
    // How far the server's clock is from ours (test mode may have set it).
    let server_offset = table["created_at"]
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| t.duration_since(jiff::Timestamp::now()))
        .unwrap_or_default();
    let mut merchant_id = String::new();
    if cfg.workload == "redeem" {
        let (s, m) = post(
            &client,
            &first,
            "/v1/merchants",
            json!({"name": "bench outlet"}),
        )
        .await?;
        if s != 201 {
            bail!("creating the bench merchant needs wallet:escrow ({s}): {m}");
        }
        merchant_id = m["id"].as_str().unwrap_or_default().to_string();
    }
    let mut shared_players = Vec::new();
    for i in 0..cfg.players {
        shared_players.push(new_player(&client, &first, i).await?);
    }
    let reads: Vec<&str> = match cfg.workload.as_str() {
        "read" => vec!["balance", "ledger", "audit", "search"],
        w @ ("balance" | "ledger" | "audit" | "search") => vec![w],
        _ => Vec::new(),
    };
    let targets = if reads.is_empty() {
        ReadTargets::default()
    } else {
        read_targets(&client, &first).await?
    };
    // A read workload runs each kind at each client count.
    let runs: Vec<(String, usize)> = if reads.is_empty() {
        cfg.clients
            .iter()
            .map(|&n| (cfg.workload.clone(), n))
            .collect()
    } else {
        reads
            .iter()
            .flat_map(|k| cfg.clients.iter().map(move |&n| (k.to_string(), n)))
            .collect()
    };
    let mut results = Vec::new();
    println!("workload  clients      ops  errors     ops/s   p50_ms   p99_ms   max_ms");
    for (workload, n) in runs {
        let mut handles = Vec::new();
        let deadline = Instant::now() + cfg.duration;
        let started = Instant::now();
        let pb = crate::progress::timed(cfg.duration.as_secs(), &format!("{} clients", n));
        let ticker = {
            let pb = pb.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    pb.set_position(started.elapsed().as_secs());
                }
            })
        };
        for i in 0..n {
            let (client, mut cfg, table_id) = (client.clone(), cfg.clone(), table_id.clone());
            let (merchant_id, targets, workload) =
                (merchant_id.clone(), targets.clone(), workload.clone());
            let shared = (!shared_players.is_empty())
                .then(|| shared_players[i % shared_players.len()].clone());
            let urls: Vec<&str> = cfg.url.split(',').collect();
            cfg.url = urls[i % urls.len()].trim_end_matches('/').to_string();
            handles.push(tokio::spawn(async move {
                match workload.as_str() {
                    "reward" => reward_client(&client, &cfg, i, shared, deadline).await,
                    k @ ("balance" | "ledger" | "audit" | "search") => {
                        read_client(&client, &cfg, k, i, &targets, deadline).await
                    }
                    "redeem" => {
                        redeem_client(&client, &cfg, i, shared, &merchant_id, deadline).await
                    }
                    _ => {
                        complete_client(
                            &client,
                            &cfg,
                            i,
                            shared,
                            &table_id,
                            server_offset,
                            deadline,
                        )
                        .await
                    }
                }
            }));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for h in handles {
            let (lat, e) = h.await??;
            all.extend(lat);
            errors += e;
        }
        let elapsed = started.elapsed().as_secs_f64();
        ticker.abort();
        pb.finish_and_clear();
        all.sort();
        let r = BenchResult {
            clients: n,
            ops: all.len(),
            errors,
            ops_per_s: all.len() as f64 / elapsed,
            p50_ms: percentile(&all, 0.50),
            p99_ms: percentile(&all, 0.99),
            max_ms: all.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0),
        };
        println!(
            "{:<8} {:>8} {:>8} {:>7} {:>9.1} {:>8.2} {:>8.2} {:>8.2}",
            workload, r.clients, r.ops, r.errors, r.ops_per_s, r.p50_ms, r.p99_ms, r.max_ms
        );
        results.push(r);
    }
    Ok(results)
}
