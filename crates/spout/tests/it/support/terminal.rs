//! A command run as a person runs it in a terminal of its own: the README's commands, as printed.

use std::process::Command;

/// A command of the README's, run as a person runs it in a terminal of its own (`script` gives it
/// one, so that a pipeline's output comes line by line), stopped when dropped.
pub struct Terminal {
    child: std::process::Child,
    output: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Terminal {
    pub fn run(command: &str) -> Terminal {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().expect("dir");
        let output = dir.path().join("typescript");
        let child = Command::new("script")
            .args(["-qfc", command])
            .arg(&output)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .expect("run script (util-linux)");
        Terminal { child, output, _dir: dir }
    }

    pub fn shows(&self, text: &str) -> bool {
        self.output().contains(text)
    }

    /// Everything the command printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        // script ends the command it runs with it.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).output();
        let _ = self.child.wait();
    }
}
