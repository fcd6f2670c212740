//! Password policy (NIST SP 800-63B §3.1.1.2), checked in the browser only: the password never
//! leaves the client. Length ≥ 12, a zxcvbn score ≥ 3, and not on a blocklist of common and
//! context-specific passwords.

/// Minimum length in characters.
pub const MIN_LEN: usize = 12;
/// Maximum length: long passphrases are welcome; this only bounds the work.
pub const MAX_LEN: usize = 256;
/// Minimum zxcvbn score (0 to 4).
pub const MIN_SCORE: u8 = 3;

/// Common passwords and the product's own context words. zxcvbn also penalises its own, much
/// larger, frequency lists; this list makes the refusal explicit for the worst offenders even
/// when padded to 12 characters.
const BLOCKLIST: &[&str] = &[
    "password",
    "passw0rd",
    "p@ssword",
    "p@ssw0rd",
    "123456",
    "1234567",
    "12345678",
    "123456789",
    "1234567890",
    "12345678910",
    "qwerty",
    "qwertyuiop",
    "qwerty123",
    "abc123",
    "111111",
    "000000",
    "iloveyou",
    "letmein",
    "welcome",
    "welcome1",
    "monkey",
    "dragon",
    "football",
    "baseball",
    "sunshine",
    "princess",
    "admin",
    "administrator",
    "changeme",
    "trustno1",
    "master",
    "superman",
    "batman",
    "starwars",
    "whatever",
    "shadow",
    "michael",
    "jennifer",
    "computer",
    "internet",
    "zaq12wsx",
    "1q2w3e4r",
    "1qaz2wsx",
    "asdfghjkl",
    "asdf1234",
    "optovault",
    "optometry",
    "optometrist",
    "optician",
    "clinic",
    "eyecare",
    "eyeclinic",
    "vision",
    "glasses",
    "spectacles",
    "contactlens",
    "patient",
    "patients",
    "doctor",
    "correcthorsebatterystaple",
    "passwordpassword",
    "letmeinletmein",
];

/// The verdict shown live under the password field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Strength {
    /// zxcvbn score 0 (terrible) to 4 (great).
    pub score: u8,
    /// Whether the password may be used.
    pub acceptable: bool,
    /// Why not, or how to improve; empty when acceptable and strong.
    pub problems: Vec<String>,
}

fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric() || "@".contains(*c))
        .collect::<String>()
        .to_lowercase()
}

/// Whether the password is, apart from case, digits and punctuation around it, a blocklisted word
/// or the username.
pub fn is_blocklisted(password: &str, username: &str) -> bool {
    let p = squash(password);
    let core = p.trim_matches(|c: char| c.is_ascii_digit() || c == '@');
    let user = squash(username);
    let mut words: Vec<&str> = BLOCKLIST.to_vec();
    if user.len() >= 3 {
        words.push(&user);
    }
    words.iter().any(|w| {
        p == *w || core == *w || {
            // The same word repeated ("passwordpassword1") or nothing but a word plus digits.
            !core.is_empty() && core.len() >= w.len() && core.split(*w).all(|rest| rest.is_empty())
        }
    })
}

/// Evaluates a candidate password for `username`.
pub fn check_password(password: &str, username: &str) -> Strength {
    let mut problems = Vec::new();
    let len = password.chars().count();
    if len < MIN_LEN {
        problems.push(format!("Use at least {MIN_LEN} characters ({len} so far)."));
    }
    if len > MAX_LEN {
        problems.push(format!("Use at most {MAX_LEN} characters."));
    }
    if is_blocklisted(password, username) {
        problems.push("This password is too common or contains your username.".into());
    }
    let score = if password.is_empty() || len > MAX_LEN {
        0
    } else {
        let entropy = zxcvbn::zxcvbn(password, &[username, "optovault", "optometry", "clinic"]);
        let score = u8::from(entropy.score());
        if score < MIN_SCORE {
            let mut why = String::from("Too easy to guess");
            if let Some(fb) = entropy.feedback() {
                if let Some(w) = fb.warning() {
                    why = format!("{w}");
                }
                for s in fb.suggestions() {
                    why.push_str(&format!(" {s}"));
                }
            }
            problems.push(why.trim().to_string());
        }
        score
    };
    Strength {
        score,
        acceptable: problems.is_empty(),
        problems,
    }
}

/// The check every "new password" form runs before anything is sent: the policy above, then
/// that both fields match. Returns the message to show.
pub fn check_new_password(password: &str, confirm: &str, username: &str) -> Result<(), String> {
    let verdict = check_password(password, username);
    if !verdict.acceptable {
        return Err(format!(
            "Choose a stronger password. {}",
            verdict.problems.join(" ")
        ));
    }
    if confirm != password {
        return Err("The two passwords do not match.".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_common_and_username_rejected() {
        assert!(!check_password("short", "jane").acceptable);
        assert!(!check_password("Password1234", "jane").acceptable);
        assert!(!check_password("passwordpassword", "jane").acceptable);
        assert!(!check_password("JaneDoe123456", "janedoe").acceptable);
        assert!(!check_password("Optovault2026!", "x").acceptable);
        assert!(!check_password("aaaaaaaaaaaaaaaa", "jane").acceptable);
    }

    #[test]
    fn new_password_needs_strength_then_a_match() {
        assert!(check_new_password("short", "short", "jane")
            .unwrap_err()
            .starts_with("Choose a stronger password."));
        let p = "violet tractor sings 42 ferns";
        assert_eq!(
            check_new_password(p, "violet tractor sings 42 fern", "jane"),
            Err("The two passwords do not match.".into())
        );
        assert_eq!(check_new_password(p, p, "jane"), Ok(()));
    }

    #[test]
    fn strong_passphrase_accepted() {
        let s = check_password("violet tractor sings 42 ferns", "jane");
        assert!(s.acceptable, "{s:?}");
        assert!(s.score >= MIN_SCORE);
    }
}
