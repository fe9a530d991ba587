package dev.secinfra.errors;

/** The caller is not authenticated ({@code unauthenticated}), for example a spent join token. */
public class UnauthenticatedException extends ApiException {
  /** Serial form version. */
  private static final long serialVersionUID = 1L;

  /**
   * An error with the given fields.
   *
   * @param info the error's fields
   * @param cause the underlying error, or null
   */
  public UnauthenticatedException(ErrorInfo info, Throwable cause) {
    super(info, cause);
  }
}
