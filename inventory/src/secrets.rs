//! Where secrets named in the inventory come from: environment variables or a prompt. The
//! library never prompts itself; the front end implements [`SecretSource::prompt`].

use crate::target::Secret;

/// What a secret is for, so a prompt can say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretKind {
    /// The SSH login password.
    LoginPassword,
    /// The private key's passphrase.
    KeyPassphrase,
    /// The sudo password.
    SudoPassword,
}

impl SecretKind {
    /// Words for messages: "login password".
    pub fn describe(self) -> &'static str {
        match self {
            SecretKind::LoginPassword => "login password",
            SecretKind::KeyPassphrase => "key passphrase",
            SecretKind::SudoPassword => "sudo password",
        }
    }
}

/// A request to ask the user for a secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PromptRequest {
    /// The host's inventory name.
    pub host: String,
    /// The login user.
    pub user: String,
    /// What the secret is for.
    pub kind: SecretKind,
}

impl PromptRequest {
    /// The text to show: "login password for root@node1".
    pub fn text(&self) -> String {
        format!("{} for {}@{}", self.kind.describe(), self.user, self.host)
    }
}

/// Looks up secrets. The CLI implements this with the process environment and a terminal prompt.
pub trait SecretSource {
    /// The value of environment variable `var`, if set.
    fn env(&self, var: &str) -> Option<Secret>;
    /// Asks the user; `Err` carries why asking was not possible.
    fn prompt(&self, request: &PromptRequest) -> Result<Secret, String>;
}

/// Secrets from the process environment; prompting is refused (no terminal in a library).
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessEnv;

impl SecretSource for ProcessEnv {
    fn env(&self, var: &str) -> Option<Secret> {
        std::env::var(var).ok().map(Secret::new)
    }

    fn prompt(&self, _request: &PromptRequest) -> Result<Secret, String> {
        Err("prompting is not available here; use an environment variable".into())
    }
}

/// Secrets from the process environment, and prompts through a callback the front end gives
/// (a terminal prompt, a TUI dialog). Each distinct request is asked once and remembered.
pub struct EnvAndPrompt<F> {
    prompt: F,
    asked: std::sync::Mutex<std::collections::HashMap<PromptRequest, Secret>>,
}

impl<F> EnvAndPrompt<F>
where
    F: Fn(&PromptRequest) -> Result<Secret, String>,
{
    /// Uses `prompt` to ask for secrets the inventory marks `"prompt"`.
    pub fn new(prompt: F) -> Self {
        Self {
            prompt,
            asked: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }
}

impl<F> SecretSource for EnvAndPrompt<F>
where
    F: Fn(&PromptRequest) -> Result<Secret, String>,
{
    fn env(&self, var: &str) -> Option<Secret> {
        ProcessEnv.env(var)
    }

    fn prompt(&self, request: &PromptRequest) -> Result<Secret, String> {
        let mut asked = self
            .asked
            .lock()
            .map_err(|_| "an earlier prompt failed".to_string())?;
        if let Some(s) = asked.get(request) {
            return Ok(s.clone());
        }
        let secret = (self.prompt)(request)?;
        asked.insert(request.clone(), secret.clone());
        Ok(secret)
    }
}
