//! `case create | update | list | show | template | timeline | consent | close | reopen`.

use std::path::Path;

use serde_json::Value;
use trm_proto::admin as api;

use super::{ask, call, show, Refused, Session};
use crate::failure::Failure;
use crate::files::{read_file, FileKind};
use crate::render;

/// A JSON file's text; its syntax is checked here so the error names the file (the node
/// checks the fields).
pub(crate) fn json_file(file: &Path, kind: FileKind) -> Result<String, Failure> {
    let text = String::from_utf8(read_file(file, kind)?)
        .map_err(|_| Failure::usage(format!("{}: not UTF-8 text", file.display())))?;
    if let Err(e) = serde_json::from_str::<Value>(&text) {
        return Err(Failure::usage(format!("{}: not JSON: {e}", file.display())));
    }
    Ok(text)
}

pub(crate) async fn create(s: &Session, file: &Path) -> Result<(), Failure> {
    let json = json_file(file, FileKind::Case)?;
    let name = file.display().to_string();
    let (answer, _) = ask(s, api::CaseCreate { json }, Refused::CaseFile(&name)).await?;
    show(s, &answer, render::created);
    Ok(())
}

pub(crate) async fn update(s: &Session, id: String, file: &Path) -> Result<(), Failure> {
    let json = json_file(file, FileKind::Case)?;
    let name = file.display().to_string();
    let request = api::CaseUpdate { id, json };
    let (answer, _) = ask(s, request, Refused::CaseUpdate(&name)).await?;
    show(s, &answer, render::updated);
    Ok(())
}

pub(crate) async fn reopen(s: &Session, request: api::CaseReopen) -> Result<(), Failure> {
    call(s, request, render::reopened).await
}

pub(crate) async fn list(s: &Session) -> Result<(), Failure> {
    call(s, api::CaseList {}, render::cases).await
}

pub(crate) async fn show_case(s: &Session, id: String) -> Result<(), Failure> {
    call(s, api::CaseShow { id }, render::case).await
}

pub(crate) async fn template(s: &Session) -> Result<(), Failure> {
    call(s, api::CaseTemplate {}, render::template).await
}

pub(crate) async fn timeline(s: &Session, id: String) -> Result<(), Failure> {
    call(s, api::CaseTimeline { id }, render::timeline).await
}

/// `case consent`: a withdrawal erases at once, so it is confirmed first: `--yes`, or a `y`
/// typed on a terminal; without a terminal and without `--yes` it is refused (usage, 64).
pub(crate) async fn consent(s: &Session, mut request: api::CaseConsent) -> Result<(), Failure> {
    if !request.withdraw.is_empty() && !request.confirmed {
        request.confirmed = confirm_withdrawal(&request.case_id, &request.withdraw)?;
    }
    call(s, request, render::consent).await
}

fn confirm_withdrawal(case_id: &str, category: &str) -> Result<bool, Failure> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(Failure::usage(
            "withdrawing consent erases at once: add --yes to confirm (no terminal to ask on)",
        ));
    }
    eprint!(
        "withdraw consent for {category} on case {case_id}? This erases the {category} values here \
         and asks every partner that received them to erase them [y/N] "
    );
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::usage(format!("cannot read the answer: {e}")))?;
    if matches!(line.trim(), "y" | "Y" | "yes") {
        Ok(true)
    } else {
        Err(Failure::new(1, "not withdrawn: not confirmed"))
    }
}

pub(crate) async fn close(s: &Session, request: api::CaseClose) -> Result<(), Failure> {
    call(s, request, render::enqueued).await
}

pub(crate) async fn access_log(s: &Session, id: String) -> Result<(), Failure> {
    call(s, api::CaseAccessLog { id }, render::access_log).await
}

/// What `case export --json` prints: where the export went (the files hold the case).
#[derive(serde::Serialize)]
struct ExportWritten {
    case: String,
    html: String,
    json: String,
    messages: usize,
}

/// `case export CASE --out F`: the JSON document in F and the printable page beside it
/// (F with extension `.html`), both new files, mode 0600.
pub(crate) async fn export(s: &Session, id: String, out: &Path) -> Result<(), Failure> {
    let page = crate::html::page_path(out)?;
    for f in [out, page.as_path()] {
        if f.exists() {
            return Err(Failure::usage(format!(
                "{} already exists; refusing to overwrite",
                f.display()
            )));
        }
    }
    let (answer, _) = ask(s, api::CaseExport { id }, Refused::Call).await?;
    let json = trm_admin_api::answers::to_json_pretty(&answer) + "\n";
    crate::files::write_new_private(out, json.as_bytes())?;
    crate::files::write_new_private(&page, crate::html::case_export(&answer).as_bytes())?;
    let written = ExportWritten {
        case: answer.case.id.clone(),
        html: page.display().to_string(),
        json: out.display().to_string(),
        messages: answer.timeline.messages.len(),
    };
    show(s, &written, |w| {
        format!(
            "case {} exported ({} messages): {} (JSON), {} (printable page); both mode 0600\n",
            w.case, w.messages, w.json, w.html
        )
    });
    Ok(())
}

/// `stats`: tables, `--json` the document, `--csv` one line per cell.
pub(crate) async fn stats(s: &Session, request: api::Stats, csv: bool) -> Result<(), Failure> {
    if csv && s.json {
        return Err(Failure::usage("choose one of --json and --csv"));
    }
    let (answer, _) = ask(s, request, Refused::Call).await?;
    if csv {
        print!("{}", render::stats_csv(&answer));
    } else {
        show(s, &answer, render::stats);
    }
    Ok(())
}
