package dev.secinfra.errors;

/** The client's certificate expired and could not be renewed or re-enrolled ({@code identity_expired}); no request was sent. */
public class IdentityExpiredException extends SecinfraException {
  /** Serial form version. */
  private static final long serialVersionUID = 1L;

  /**
   * An error with the given fields.
   *
   * @param info the error's fields
   * @param cause the underlying error, or null
   */
  public IdentityExpiredException(ErrorInfo info, Throwable cause) {
    super(info, cause);
  }
}
