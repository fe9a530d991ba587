package dev.secinfra.errors;

/** The caller may not do this ({@code permission_denied}). */
public class PermissionDeniedException extends ApiException {
  /** Serial form version. */
  private static final long serialVersionUID = 1L;

  /**
   * An error with the given fields.
   *
   * @param info the error's fields
   * @param cause the underlying error, or null
   */
  public PermissionDeniedException(ErrorInfo info, Throwable cause) {
    super(info, cause);
  }
}
