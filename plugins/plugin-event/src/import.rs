//! `POST /events/import`: an upload of events as a background job, as events-api's
//! `importEvents` (`src/models/event.ts`, `src/services/importEvents.ts`) does it. The
//! request stores a PENDING `JOB`, answers it at once and spawns the task `import`; the task
//! parses the file, creates the events as DRAFTs of the job's user, and ends the job DONE
//! with a log, or ERROR. The format is Tidings' CSV, described in `docs/events-api.md`:
//!
//! ```text
//! start;end;description;location;classes;departments
//! 2024-03-04 08:00;2024-03-04 12:00;Sporttag;Turnhalle;26Ga 26Gb;
//! 2024-03-05;2024-03-05;Projektwoche;;;Gymnasium
//! ```

use std::collections::BTreeMap;

use chrono::{NaiveDate, NaiveDateTime};
use events_model::audience::{Department, all_departments};
use events_model::event::{Audience, Event, TeachingAffected, sorted_set};
use events_model::{Changes, EVENT, JOB};
use plugin_sdk::{
    MAX_TEXT_CHARS, Notification, PluginError, Record, Request, Response, Result, Target, TaskRequest, Value, get,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The most events one import creates: a response holds at most 1,000 writes, and the job
/// takes one of them.
const MAX_ROWS: usize = 900;

/// A `JOB` record as the `job` plugin stores it (the original's `Job` columns).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Job {
    #[serde(rename = "type")]
    kind: String,
    state: String,
    user_id: String,
    semester_id: Option<String>,
    sync_date: Option<String>,
    description: String,
    filename: Option<String>,
    log: String,
}

/// The task's input.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Input {
    job_id: String,
    csv: String,
}

/// `POST /import?type=V1|GBSL_XLSX|GBJB_CSV` with the file in the multipart field
/// `terminplan`: 200 with the PENDING job, announced to the caller.
///
/// Deviation: every type reads Tidings' CSV format; the original's Excel and GBJB formats
/// are not ported. The legacy types stay admin-only (403 for users), as in the original.
pub fn start(req: &Request) -> Result<Response> {
    let user = req.require_user()?;
    match req.query("type") {
        Some("V1") => {}
        Some("GBSL_XLSX" | "GBJB_CSV") if !req.is_admin() => {
            return Err(PluginError::Forbidden("Not authorized to import legacy format".into()));
        }
        Some("GBSL_XLSX" | "GBJB_CSV") => {}
        _ => return Err(PluginError::InvalidInput("type must be one of V1, GBSL_XLSX, GBJB_CSV".into())),
    }
    let upload = req
        .upload()
        .filter(|u| u.field == "terminplan")
        .ok_or_else(|| PluginError::InvalidInput("a file is required in the form field terminplan".into()))?;
    let csv = String::from_utf8(upload.data.clone())
        .map_err(|_| PluginError::InvalidInput("the file must be CSV text in UTF-8".into()))?;

    let job = Job {
        kind: "IMPORT".into(),
        state: "PENDING".into(),
        user_id: user.id.clone(),
        semester_id: None,
        sync_date: None,
        description: String::new(),
        filename: Some(upload.filename.clone()),
        log: String::new(),
    };
    let job = Record::new(JOB, req.now(), job);
    let json = job.to_json();
    Ok(Response::ok(&json)
        .insert(&job)
        .notify(Notification::created(JOB, &job.id, &json).to(Target::User(user.id.clone())))
        .spawn("import", &Input { job_id: job.id.clone(), csv }))
}

/// The task `import`: create the events and end the job, announced to everyone with its
/// events (`Jobs.findModel`). A job that is gone or already ended is left alone, so a
/// repeated run does nothing. On the host's last attempt (`failure`), the job ends ERROR
/// with the host's reason.
pub fn run(req: &TaskRequest) -> Result<Response> {
    let input: Input =
        serde_json::from_str(&req.input).map_err(|e| PluginError::Internal(format!("bad import input: {e}")))?;
    let Some(mut job) = get::<Job>(JOB, &input.job_id)? else { return Ok(Response::no_content()) };
    if job.data.state != "PENDING" {
        return Ok(Response::no_content());
    }
    let mut changes = Changes::new(&req.now);
    let outcome = match &req.failure {
        Some(reason) => Err(reason.clone()),
        None => parse(&input.csv, &all_departments()?),
    };
    match outcome {
        Ok(report) => {
            for (_, mut event) in report.events.iter().cloned() {
                event.author_id = job.data.user_id.clone();
                event.job_id = Some(job.id.clone());
                changes.events.insert(Record::new(EVENT, &req.now, event));
            }
            job.data.state = "DONE".into();
            job.data.log = report.log();
        }
        Err(error) => {
            job.data.state = "ERROR".into();
            job.data.log = error;
        }
    }
    job.touch(&req.now);
    let mut json = job.to_json();
    // The job as `GET /jobs/:id` reads it once this commits: its events in that order (the
    // order of the file's rows would differ, since they all share `createdAt`).
    let events = changes.events_of_job(&job.id)?;
    json["events"] = Value::Array(changes.api_events(&events)?);
    let response =
        Response::no_content().update(&job).notify(Notification::changed(JOB, &job.id, &json).to(Target::All));
    Ok(changes.into_response(response))
}

/// A parsed file: the events by their row, and the log's sections.
#[derive(Debug, Default)]
struct Report {
    rows: usize,
    events: Vec<(usize, Event)>,
    failed: Vec<String>,
    warnings: Vec<String>,
    infos: Vec<String>,
}

impl Report {
    /// The original's log: `# Success: x/y events imported`, then `# Failed`, `# Warnings`
    /// and `# Infos`, one line per entry.
    fn log(&self) -> String {
        let mut log = format!("# Success: {}/{} events imported\n", self.events.len(), self.rows);
        for (title, lines) in [("Failed", &self.failed), ("Warnings", &self.warnings), ("Infos", &self.infos)] {
            log.push_str(&format!("# {title}\n"));
            for line in lines {
                log.push_str(line);
                log.push('\n');
            }
        }
        log
    }
}

/// The columns of the format; `start`, `end` and `description` are required.
const COLUMNS: [&str; 10] = [
    "start",
    "end",
    "description",
    "descriptionLong",
    "location",
    "classes",
    "classGroups",
    "departments",
    "audience",
    "teachingAffected",
];

/// Parse the file. A file that cannot be read as the format at all (no header, a missing
/// required column, too many rows) is an `Err` that ends the job ERROR; a bad row is listed
/// under `# Failed` and skipped.
fn parse(text: &str, departments: &[Record<Department>]) -> std::result::Result<Report, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first_line = text.lines().next().unwrap_or_default();
    let separator = if first_line.contains(';') { ';' } else { ',' };
    let mut records = read_csv(text, separator)?.into_iter();
    let Some((_, header)) = records.next() else { return Err("the file is empty".into()) };

    let mut report = Report::default();
    let mut columns: BTreeMap<&'static str, usize> = BTreeMap::new();
    for (index, name) in header.iter().enumerate() {
        match COLUMNS.iter().find(|c| c.eq_ignore_ascii_case(name.trim())) {
            Some(column) => {
                columns.insert(column, index);
            }
            None if name.trim().is_empty() => {}
            None => report.infos.push(format!("Column {:?} is not part of the format and was ignored", name.trim())),
        }
    }
    for required in ["start", "end", "description"] {
        if !columns.contains_key(required) {
            return Err(format!("Missing column: {required} (the first row must name the columns)"));
        }
    }

    for (line, cells) in records {
        if cells.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        report.rows += 1;
        if report.rows > MAX_ROWS {
            return Err(format!("Too many rows: an import creates at most {MAX_ROWS} events"));
        }
        let row: Row = columns.iter().map(|(name, i)| (*name, cells.get(*i).map_or("", |c| c.trim()))).collect();
        match parse_row(&row, departments) {
            Ok((event, warnings, infos)) => {
                report.warnings.extend(warnings.iter().map(|w| format!("Row {line}: {w}")));
                report.infos.extend(infos.iter().map(|i| format!("Row {line}: {i}")));
                report.events.push((line, event));
            }
            Err(error) => report.failed.push(format!("Error at row: {line}: {error}")),
        }
    }
    Ok(report)
}

/// The trimmed cells of one row by column.
type Row<'a> = BTreeMap<&'static str, &'a str>;

type RowResult = std::result::Result<(Event, Vec<String>, Vec<String>), String>;

/// One row as a DRAFT (author and job are set by the caller). Warnings and infos also go
/// into the event's `meta`, as the original's importers do.
fn parse_row(row: &Row, departments: &[Record<Department>]) -> RowResult {
    let cell = |name: &str| row.get(name).copied().unwrap_or("");
    let mut warnings = Vec::new();
    let mut infos = Vec::new();
    let start = parse_date(cell("start"), false).map_err(|e| format!("start: {e}"))?;
    let (end, whole_day) = match parse_date(cell("end"), true) {
        Ok(end) => (end, !cell("end").contains([':', 'T'])),
        Err(e) => return Err(format!("end: {e}")),
    };
    if whole_day {
        infos.push("end has no time: the event lasts until the end of that day".to_owned());
    }
    let mut event = Event::draft("", start, end);
    event.check_dates().map_err(|_| "start must not be after end".to_owned())?;

    for (name, target) in [
        ("description", &mut event.description),
        ("descriptionLong", &mut event.description_long),
        ("location", &mut event.location),
    ] {
        let text = cell(name);
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(format!("{name}: text is limited to {MAX_TEXT_CHARS} characters"));
        }
        *target = text.to_owned();
    }
    event.classes = sorted_set(list(cell("classes"), true));
    event.class_groups = sorted_set(list(cell("classGroups"), true));
    let mut department_ids = Vec::new();
    for name in list(cell("departments"), false) {
        match departments.iter().find(|d| d.data.name == name || d.data.letter == name) {
            Some(department) => department_ids.push(department.id.clone()),
            None => warnings.push(format!("Unknown department {name:?} was left out")),
        }
    }
    event.department_ids = sorted_set(department_ids);
    if !cell("audience").is_empty() {
        event.audience = enum_cell::<Audience>(cell("audience")).map_err(|e| format!("audience: {e}"))?;
    }
    if !cell("teachingAffected").is_empty() {
        event.teaching_affected =
            enum_cell::<TeachingAffected>(cell("teachingAffected")).map_err(|e| format!("teachingAffected: {e}"))?;
    }
    if !warnings.is_empty() || !infos.is_empty() {
        event.meta = Some(json!({ "warnings": warnings, "infos": infos }));
    }
    Ok((event, warnings, infos))
}

fn enum_cell<T: serde::de::DeserializeOwned>(text: &str) -> std::result::Result<T, String> {
    serde_json::from_value(Value::String(text.to_uppercase())).map_err(|_| format!("unknown value {text:?}"))
}

/// The items of a list cell: separated by commas, or also by spaces when `words`.
fn list(text: &str, words: bool) -> Vec<String> {
    text.split(|c: char| c == ',' || (words && c.is_whitespace()))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A date cell in the stored form. Accepted: ISO 8601 with an offset; `YYYY-MM-DD`,
/// `YYYY-MM-DD HH:MM[:SS]` or `YYYY-MM-DDTHH:MM[:SS]` in UTC; `DD.MM.YYYY [HH:MM]` in UTC.
/// A date without a time is the start of that day, or for an `end` the start of the next
/// day (the whole day).
fn parse_date(text: &str, is_end: bool) -> std::result::Result<String, String> {
    if text.is_empty() {
        return Err("a date is required".into());
    }
    if let Some(date) = events_model::date::parse(text).filter(|_| text.contains('T') && text.len() > 19) {
        return Ok(events_model::date::format(&date));
    }
    for format in ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%d.%m.%Y %H:%M"] {
        if let Ok(date) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(events_model::date::format(&date.and_utc()));
        }
    }
    for format in ["%Y-%m-%d", "%d.%m.%Y"] {
        if let Ok(day) = NaiveDate::parse_from_str(text, format) {
            let day = if is_end { day.succ_opt().unwrap_or(day) } else { day };
            let midnight = day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
            return Ok(events_model::date::format(&midnight));
        }
    }
    Err(format!("not a date: {text:?} (expected e.g. 2024-03-04 or 2024-03-04 08:00)"))
}

/// RFC 4180 records with their 1-based line numbers: `"` quotes a cell, `""` is a quote
/// inside one, and a quoted cell may span lines.
fn read_csv(text: &str, separator: char) -> std::result::Result<Vec<(usize, Vec<String>)>, String> {
    let mut records = Vec::new();
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut line = 1;
    let mut record_line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            '"' if quoted => quoted = false,
            '"' if cell.trim().is_empty() => {
                cell.clear();
                quoted = true;
            }
            '\n' if quoted => {
                line += 1;
                cell.push('\n');
            }
            c if c == separator && !quoted => cells.push(std::mem::take(&mut cell)),
            '\r' if !quoted => {}
            '\n' => {
                cells.push(std::mem::take(&mut cell));
                records.push((record_line, std::mem::take(&mut cells)));
                line += 1;
                record_line = line;
            }
            c => cell.push(c),
        }
    }
    if quoted {
        return Err(format!("Row {record_line}: a quoted cell is not closed"));
    }
    if !cell.is_empty() || !cells.is_empty() {
        cells.push(cell);
        records.push((record_line, cells));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_may_be_quoted() {
        let records = read_csv("a;b\r\n\"x;\"\"y\"\"\";\"two\nlines\"\nlast;", ';').unwrap();
        assert_eq!(
            records,
            vec![
                (1, vec!["a".into(), "b".into()]),
                (2, vec!["x;\"y\"".into(), "two\nlines".into()]),
                (4, vec!["last".into(), "".into()]),
            ]
        );
        assert!(read_csv("\"open", ',').is_err());
    }

    #[test]
    fn dates_take_several_forms() {
        assert_eq!(parse_date("2024-03-04", false).unwrap(), "2024-03-04T00:00:00.000Z");
        assert_eq!(parse_date("2024-03-04", true).unwrap(), "2024-03-05T00:00:00.000Z");
        assert_eq!(parse_date("2024-03-04 08:30", false).unwrap(), "2024-03-04T08:30:00.000Z");
        assert_eq!(parse_date("04.03.2024 08:30", false).unwrap(), "2024-03-04T08:30:00.000Z");
        assert_eq!(parse_date("2024-03-04T08:30:00+01:00", false).unwrap(), "2024-03-04T07:30:00.000Z");
        assert!(parse_date("soon", false).is_err());
    }

    #[test]
    fn a_file_reports_each_row() {
        let csv = "start,end,description,audience,colour\n\
                   2024-03-04 08:00,2024-03-04 10:00,Sport,ALL,red\n\
                   2024-03-05,2024-03-05,Day,,\n\
                   ,2024-03-05,No start,,\n\
                   2024-03-06 10:00,2024-03-06 08:00,Backwards,,\n\
                   \n";
        let report = parse(csv, &[]).unwrap();
        assert_eq!(report.rows, 4);
        assert_eq!(report.events.len(), 2);
        assert_eq!(report.events[0].1.audience, Audience::All);
        assert_eq!(report.events[1].1.end, "2024-03-06T00:00:00.000Z");
        assert_eq!(
            report.log(),
            "# Success: 2/4 events imported\n\
             # Failed\n\
             Error at row: 4: start: a date is required\n\
             Error at row: 5: start must not be after end\n\
             # Warnings\n\
             # Infos\n\
             Column \"colour\" is not part of the format and was ignored\n\
             Row 3: end has no time: the event lasts until the end of that day\n"
        );
        assert!(parse("start,end\n", &[]).unwrap_err().contains("description"));
    }
}
