//! docs/CLI.md documents every command of both binaries, with every option: read from the
//! real binaries' `--help`, so a new subcommand or option fails here until it is documented.
//!
//! The rules (docs/CLI.md keeps them):
//! - a command (every leaf of the command tree: `trm-admin referral approve`,
//!   `trm-node key rotate`) is documented by a heading whose code span names its full path,
//!   or names it in a group that shares the path up to the last word
//!   (`` ### `trm-admin peer add | list | remove` ``); failing a heading, by a code span in the
//!   text that starts with its full path;
//! - each of its long options appears as `--name` in the section under such a heading (down to
//!   the next heading of the same or a higher level), or anywhere in the file when only a code
//!   span in the text names the command. A binary's global options (`--cred`, `--json`,
//!   `--log-format`) are checked once, in the binary's own section (`` ## `trm-admin` ``);
//!   `--help` and `--version` are not.

use std::collections::BTreeSet;
use std::path::Path;

use trm_tests::bins;

/// One command as `--help` describes it.
struct Command {
    /// The full path, e.g. `["trm-admin", "referral", "approve"]`.
    path: Vec<String>,
    /// Its long options without the dashes.
    options: BTreeSet<String>,
    /// Whether it has subcommands of its own.
    group: bool,
}

impl Command {
    fn name(&self) -> String {
        self.path.join(" ")
    }
}

/// The subcommands and long options listed by one `--help` text.
fn parse_help(text: &str) -> (Vec<String>, BTreeSet<String>) {
    let mut commands = Vec::new();
    let mut options = BTreeSet::new();
    let mut section = "";
    for line in text.lines() {
        if !line.starts_with(' ') {
            section = line.trim_end_matches(':');
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let item = line.trim_start();
        match section {
            // "  name  description": exactly two spaces in; deeper lines are wrapped help.
            "Commands" if indent == 2 => {
                let name = item.split_whitespace().next().unwrap_or_default();
                if name != "help" {
                    commands.push(name.to_string());
                }
            }
            // "  -h, --help  …" or "      --cred <CRED>  …".
            "Options" if indent <= 6 => {
                let item = item.split_once(", ").map_or(item, |(short, rest)| {
                    if short.len() == 2 && short.starts_with('-') {
                        rest
                    } else {
                        item
                    }
                });
                if let Some(long) = item.strip_prefix("--") {
                    let name: String = long
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                        .collect();
                    if name != "help" && name != "version" {
                        options.insert(name);
                    }
                }
            }
            _ => {}
        }
    }
    (commands, options)
}

/// Every command of `binary`, the binary itself first, by running its `--help` recursively.
fn command_tree(binary: &str) -> Vec<Command> {
    let mut out = Vec::new();
    let mut todo = vec![vec![binary.to_string()]];
    while let Some(path) = todo.pop() {
        let mut args: Vec<&str> = path[1..].iter().map(String::as_str).collect();
        args.push("--help");
        let ran = bins::run(binary, &args);
        assert_eq!(
            ran.code,
            Some(0),
            "{} --help failed: {}",
            path.join(" "),
            ran.stderr
        );
        let (subs, options) = parse_help(&ran.stdout);
        for s in subs.iter().rev() {
            let mut p = path.clone();
            p.push(s.clone());
            todo.push(p);
        }
        out.push(Command {
            path,
            options,
            group: !subs.is_empty(),
        });
    }
    out
}

/// The text of every inline code span of `line` (between single backticks).
fn code_spans(line: &str) -> Vec<String> {
    line.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.trim().to_string())
        .collect()
}

/// The command paths a heading's code span names: `trm-admin peer add | list` names
/// `trm-admin peer add` and `trm-admin peer list`.
fn named_paths(span: &str) -> Vec<String> {
    let mut parts = span.split(" | ");
    let first = parts.next().unwrap_or_default().trim();
    let prefix = first.rsplit_once(' ').map_or("", |(p, _)| p);
    let mut out = vec![first.to_string()];
    for alt in parts {
        out.push(format!("{prefix} {}", alt.trim()));
    }
    out
}

/// A heading of the document: the commands it names and the text of its section.
struct Section {
    names: Vec<String>,
    text: String,
}

/// The sections of a markdown text, headings in fenced code blocks ignored.
fn sections(doc: &str) -> Vec<Section> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut fenced = false;
    let mut headings = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with("```") {
            fenced = !fenced;
        } else if !fenced && l.starts_with('#') {
            let level = l.chars().take_while(|c| *c == '#').count();
            headings.push((i, level));
        }
    }
    headings
        .iter()
        .enumerate()
        .map(|(k, &(i, level))| {
            let end = headings[k + 1..]
                .iter()
                .find(|(_, l)| *l <= level)
                .map_or(lines.len(), |(j, _)| *j);
            Section {
                names: code_spans(lines[i])
                    .iter()
                    .flat_map(|s| named_paths(s))
                    .collect(),
                text: lines[i..end].join("\n"),
            }
        })
        .collect()
}

/// What docs/CLI.md is missing for `commands`, one line each.
fn missing(doc: &str, commands: &[Command]) -> Vec<String> {
    let sections = sections(doc);
    let spans: Vec<String> = doc.lines().flat_map(code_spans).collect();
    let global = &commands[0].options;
    let mut out = Vec::new();
    for (k, c) in commands.iter().enumerate() {
        if c.group && k != 0 {
            continue; // its leaves are checked; a group is documented through them
        }
        let name = c.name();
        let under: Vec<&Section> = sections
            .iter()
            .filter(|s| s.names.contains(&name))
            .collect();
        let in_text = spans
            .iter()
            .any(|s| s == &name || s.starts_with(&format!("{name} ")));
        let where_options: Vec<&str> = match (under.is_empty(), in_text) {
            (false, _) => under.iter().map(|s| s.text.as_str()).collect(),
            (true, true) => vec![doc],
            (true, false) => {
                out.push(format!(
                    "command `{name}`: no heading or code span names it"
                ));
                continue;
            }
        };
        for o in &c.options {
            if k != 0 && global.contains(o) {
                continue;
            }
            let flag = format!("--{o}");
            let documented = where_options.iter().any(|t| {
                t.match_indices(&flag).any(|(at, _)| {
                    let next = t[at + flag.len()..].chars().next();
                    !matches!(next, Some(ch) if ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
                })
            });
            if !documented {
                out.push(format!(
                    "command `{name}`: option `{flag}` is not documented"
                ));
            }
        }
    }
    out
}

fn cli_md() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/CLI.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_command_and_option_of_both_binaries_is_in_cli_md() {
    let doc = cli_md();
    let mut problems = Vec::new();
    for binary in ["trm-node", "trm-admin"] {
        let commands = command_tree(binary);
        let names: BTreeSet<String> = commands.iter().map(Command::name).collect();
        // The reading of --help itself: known commands and options are found.
        for known in [
            "trm-node key rotate",
            "trm-node init",
            "trm-admin referral approve",
            "trm-admin case close",
            "trm-admin audit verify",
            "trm-admin status",
        ] {
            if known.starts_with(&format!("{binary} ")) {
                assert!(
                    names.contains(known),
                    "{known} not read from --help: {names:?}"
                );
            }
        }
        let with_options = commands.iter().filter(|c| !c.options.is_empty()).count();
        assert!(with_options > 3, "{binary}: options not read from --help");
        problems.extend(missing(&doc, &commands));
    }
    assert!(
        problems.is_empty(),
        "docs/CLI.md is missing:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_checker_finds_a_command_or_option_left_out() {
    let cmd = |path: &str, options: &[&str], group: bool| Command {
        path: path.split(' ').map(str::to_string).collect(),
        options: options.iter().map(|o| o.to_string()).collect(),
        group,
    };
    let commands = [
        cmd("trm-admin", &["json"], true),
        cmd("trm-admin peer", &["json"], true),
        cmd("trm-admin peer add", &["replace", "json"], false),
        cmd("trm-admin peer trust", &["json"], false),
        cmd("trm-admin case close", &["to", "outcome"], false),
        cmd("trm-admin inbox", &["json"], false),
    ];
    let doc = "## `trm-admin`\n`--json`\n### `trm-admin peer add | list | trust`\n`--replace`\n\
               ```sh\n# `trm-admin case close` in a fence is no heading\n```\n\
               ### `trm-admin case close`\n`--to` and `--top`\n\nSee `trm-admin inbox --json`.\n";
    assert_eq!(
        missing(doc, &commands),
        ["command `trm-admin case close`: option `--outcome` is not documented"]
    );
    let without = doc.replace(" | trust", "");
    assert_eq!(
        missing(&without, &commands),
        [
            "command `trm-admin peer trust`: no heading or code span names it",
            "command `trm-admin case close`: option `--outcome` is not documented",
        ]
    );
    let help = "About\n\nUsage: x\n\nCommands:\n  add   Add one\n  help  Print\n\nOptions:\n  -r, --replace  Re-pin\n      --node-cert <X>  Cert\n          --not-an-option wrapped help\n  -h, --help  Help\n";
    let (subs, options) = parse_help(help);
    assert_eq!(subs, ["add"]);
    assert_eq!(
        options.into_iter().collect::<Vec<_>>(),
        ["node-cert", "replace"]
    );
}
