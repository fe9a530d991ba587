package dev.secinfra;

/**
 * How a client with several endpoints picks its home endpoint, the one its calls go to while it
 * works (spec 12.2). The endpoint order is fixed when the client is created.
 */
public enum EndpointOrder {
  /**
   * The home endpoint is chosen uniformly at random from the list, with the client's random
   * source (the default): a fleet's clients spread evenly over the replicas.
   */
  RANDOM,
  /**
   * The home endpoint is the first URL given: for an application that orders the list by
   * preference (the replica in its own zone first).
   */
  LISTED
}
