//! `--config FILE`: settings from a TOML file, one key per long flag of
//! `loyalty serve` (`reward-rate-limit = 20`). A flag on the command line
//! beats its environment variable, which beats the file, which beats the
//! default: a key is used only when neither the flag nor its variable is
//! given, by adding it to the command line clap then parses (so a value
//! from the file is checked exactly like one typed as a flag).

use std::ffi::OsString;

use clap::ArgAction;

/// The flags whose values are secrets: masked by `loyalty config print`.
pub const SECRET_KEYS: &[&str] = &["database-url", "redis-url", "nats-url"];

/// What a settings file added to the command line.
#[derive(Debug, Default)]
pub struct Applied {
    /// The file, if one was given.
    pub file: Option<String>,
    /// The keys taken from it.
    pub keys: Vec<String>,
}

/// Adds the settings of `--config FILE` (or `LOYALTY_CONFIG`) to `args` for
/// `serve` and `config print`; other commands are left alone.
pub fn apply(
    mut args: Vec<OsString>,
    serve: &clap::Command,
) -> Result<(Vec<OsString>, Applied), String> {
    let words: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let is_serve = words.get(1).is_some_and(|w| w == "serve")
        || (words.get(1).is_some_and(|w| w == "config")
            && words.get(2).is_some_and(|w| w == "print"));
    if !is_serve {
        return Ok((args, Applied::default()));
    }
    let from_flag = words.iter().enumerate().find_map(|(i, w)| {
        if w == "--config" {
            words.get(i + 1).cloned()
        } else {
            w.strip_prefix("--config=").map(str::to_string)
        }
    });
    let Some(file) = from_flag.or_else(|| std::env::var("LOYALTY_CONFIG").ok()) else {
        return Ok((args, Applied::default()));
    };
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read the config file {file}: {e}"))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        format!(
            "{file}: not valid TOML: {}",
            e.message().lines().next().unwrap_or("")
        )
    })?;
    let mut applied = Applied {
        file: Some(file.clone()),
        keys: Vec::new(),
    };
    for (key, value) in &table {
        let Some(arg) = serve
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && key != "config")
        else {
            return Err(format!(
                "{file}: unknown setting `{key}` (keys are the long flags of `loyalty serve`, e.g. reward-rate-limit)"
            ));
        };
        let flag = format!("--{key}");
        let on_command_line = words
            .iter()
            .any(|w| *w == flag || w.starts_with(&format!("{flag}=")));
        let in_environment = arg
            .get_env()
            .is_some_and(|env| std::env::var_os(env).is_some());
        if on_command_line || in_environment {
            continue;
        }
        let is_switch = matches!(arg.get_action(), ArgAction::SetTrue);
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => {
                return Err(format!(
                    "{file}: setting `{key}` must be a string, a number or true/false"
                ));
            }
        };
        if is_switch {
            match value {
                toml::Value::Boolean(true) => args.push(OsString::from(flag)),
                toml::Value::Boolean(false) => {}
                _ => return Err(format!("{file}: setting `{key}` must be true or false")),
            }
        } else {
            args.push(OsString::from(format!("{flag}={text}")));
        }
        applied.keys.push(key.clone());
    }
    Ok((args, applied))
}

/// The long flag a clap error is about, e.g. `reward-rate-limit`.
pub fn error_key(e: &clap::Error) -> Option<String> {
    let arg = e.get(clap::error::ContextKind::InvalidArg)?;
    let s = arg.to_string();
    let flag = s.strip_prefix("--")?;
    Some(flag.split([' ', '=']).next().unwrap_or(flag).to_string())
}

/// `url` with any password replaced by `***`.
pub fn mask(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some((a, h)) => (a, h),
        None => return url.to_string(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => format!("{scheme}://***@{host}"),
    }
}
