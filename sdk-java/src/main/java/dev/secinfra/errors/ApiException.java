package dev.secinfra.errors;

/** The server answered with an error status (400 or more). */
public class ApiException extends SecinfraException {
  /** Serial form version. */
  private static final long serialVersionUID = 1L;

  /**
   * An error with the given fields.
   *
   * @param info the error's fields
   * @param cause the underlying error, or null
   */
  public ApiException(ErrorInfo info, Throwable cause) {
    super(info, cause);
  }
}
