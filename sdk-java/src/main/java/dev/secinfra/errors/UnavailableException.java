package dev.secinfra.errors;

/** The server cannot answer now ({@code unavailable}, or {@code deadline_exceeded} from the server). */
public class UnavailableException extends ApiException {
  /** Serial form version. */
  private static final long serialVersionUID = 1L;

  /**
   * An error with the given fields.
   *
   * @param info the error's fields
   * @param cause the underlying error, or null
   */
  public UnavailableException(ErrorInfo info, Throwable cause) {
    super(info, cause);
  }
}
