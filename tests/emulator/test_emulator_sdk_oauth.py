"""The token endpoint through PandaDoc's official Python SDK (``accessToken``)."""

from __future__ import annotations

from pandadoc_client.api.o_auth_2_0_authentication_api import OAuth20AuthenticationApi

from proxy.emulator import EmulatorState

from .emulator_helpers import Sdk, assert_complete


async def test_access_token(sdk: Sdk, state: EmulatorState) -> None:
    pair = state.issue_pair()
    answer = await sdk(
        OAuth20AuthenticationApi,
        "access_token",
        grant_type="refresh_token",
        client_id="emulator-client",
        client_secret="emulator-secret",
        refresh_token=pair["refresh_token"],
        scope="read+write",
    )
    assert answer.refresh_token != pair["refresh_token"]  # rotated
    assert (answer.token_type, answer.scope) == ("Bearer", "read+write")
    assert answer.expires_in == 31_536_000
    assert_complete(answer)
