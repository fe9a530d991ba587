package dev.secinfra.errors;

/** No usable answer: connection refused or reset, TLS or server verification failure, attempt timeout, or an undecodable 2xx. */
public class TransportException extends SecinfraException {
  /** Serial form version. */
  private static final long serialVersionUID = 1L;

  /**
   * An error with the given fields.
   *
   * @param info the error's fields
   * @param cause the underlying error, or null
   */
  public TransportException(ErrorInfo info, Throwable cause) {
    super(info, cause);
  }
}
