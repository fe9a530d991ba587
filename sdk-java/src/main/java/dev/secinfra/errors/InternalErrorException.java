package dev.secinfra.errors;

/** The server failed ({@code internal}, {@code unimplemented} or a code this SDK does not know). */
public class InternalErrorException extends ApiException {
  /** Serial form version. */
  private static final long serialVersionUID = 1L;

  /**
   * An error with the given fields.
   *
   * @param info the error's fields
   * @param cause the underlying error, or null
   */
  public InternalErrorException(ErrorInfo info, Throwable cause) {
    super(info, cause);
  }
}
