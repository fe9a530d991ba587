package dev.secinfra.errors;

/** The resource does not exist ({@code not_found}). */
public class NotFoundException extends ApiException {
  /** Serial form version. */
  private static final long serialVersionUID = 1L;

  /**
   * An error with the given fields.
   *
   * @param info the error's fields
   * @param cause the underlying error, or null
   */
  public NotFoundException(ErrorInfo info, Throwable cause) {
    super(info, cause);
  }
}
