//! Errors of the library.

/// Errors from creating or using a driver, or from configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No driver handles the connection string's scheme.
    #[error("Driver not found for connection string: {0}")]
    UnknownDriver(String),
    /// The connection string is not a valid URL for its driver.
    #[error("invalid connection string {connection_string}: {reason}")]
    InvalidConnectionString {
        /// The connection string, with any password hidden.
        connection_string: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The driver cannot reach or use its backend.
    #[error("{driver} driver: {message}")]
    Backend {
        /// Driver name (`redis`, `sqlite`, ...).
        driver: &'static str,
        /// What failed, with any password hidden.
        message: String,
    },
    /// The driver does not implement this operation.
    #[error("{driver}: {operation} is not supported by this driver")]
    Unsupported {
        /// Driver name.
        driver: &'static str,
        /// The operation asked for.
        operation: &'static str,
    },
    /// A configuration file could not be read or parsed.
    #[error("configuration: {0}")]
    Config(String),
}

impl Error {
    /// A backend error whose message has passwords of connection strings
    /// hidden.
    pub fn backend(driver: &'static str, message: impl std::fmt::Display) -> Error {
        Error::Backend {
            driver,
            message: crate::drivers::redact_secrets(&message.to_string()),
        }
    }
}

/// Result of this library's fallible operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
