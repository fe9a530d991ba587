package dev.secinfra.errors;

/** The system is not in the state the call needs ({@code failed_precondition}). */
public class FailedPreconditionException extends ApiException {
  /** Serial form version. */
  private static final long serialVersionUID = 1L;

  /**
   * An error with the given fields.
   *
   * @param info the error's fields
   * @param cause the underlying error, or null
   */
  public FailedPreconditionException(ErrorInfo info, Throwable cause) {
    super(info, cause);
  }
}
