package dev.secinfra.errors;

/** The call's deadline passed ({@code deadline_exceeded}). */
public class DeadlineExceededException extends TransportException {
  /** Serial form version. */
  private static final long serialVersionUID = 1L;

  /**
   * An error with the given fields.
   *
   * @param info the error's fields
   * @param cause the underlying error, or null
   */
  public DeadlineExceededException(ErrorInfo info, Throwable cause) {
    super(info, cause);
  }
}
