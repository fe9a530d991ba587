/**
 * Helpers for tests of applications that use the SDK, shipped in the main artifact as the other
 * SDKs ship theirs: {@link dev.secinfra.testing.ReferenceServer} runs the real reference server
 * in test mode, {@link dev.secinfra.testing.TestAuthority} issues X509-SVIDs for a {@link
 * dev.secinfra.identity.StaticIdentitySource} without a server, and {@link
 * dev.secinfra.testing.FakeTimeSource} holds the clocks still. Not for production code.
 */
package dev.secinfra.testing;
