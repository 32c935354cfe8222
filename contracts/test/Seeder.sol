// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {CloseReason, SessionParams} from "../src/SessionTypes.sol";
import {SessionWallet} from "../src/SessionWallet.sol";
import {SessionWalletFactory} from "../src/SessionWalletFactory.sol";
import {MockToken} from "./MockToken.sol";
import {TestGame} from "./TestGame.sol";

/// @notice Benchmark seeder: in one transaction it opens sessions and drives many wallet
/// operations on them, so that a chain with hundreds of thousands of session events is
/// built from a few hundred transactions. It is the owner of every session it opens and,
/// once the factory trusts it as an operator, their operator too; it mints its own tokens.
/// Everything it does follows from the `seed` of each call (deterministic).
contract Seeder {
    SessionWalletFactory public immutable factory;
    MockToken public immutable token;
    TestGame public immutable game;

    uint256 private constant UNIT = 1e18;
    uint256 private constant SESSION_FUNDS = 10_000 * UNIT;
    uint256 private constant OP_FUNDS = 1_000 * UNIT;

    /// @notice Wallets still open; an operation picks one of them at random.
    address[] public openWallets;
    /// @notice Closed wallets, for `recover` after a late transfer.
    address[] public closedWallets;
    /// @notice Sessions opened so far (also the salt of the next one).
    uint256 public created;
    /// @notice Session events emitted so far: SessionCreated plus every wallet event.
    uint256 public sessionEvents;

    constructor(SessionWalletFactory factory_, MockToken token_, TestGame game_) {
        factory = factory_;
        token = token_;
        game = game_;
        token_.approve(address(factory_), type(uint256).max);
    }

    function openCount() external view returns (uint256) {
        return openWallets.length;
    }

    function closedCount() external view returns (uint256) {
        return closedWallets.length;
    }

    /// @notice Open `newSessions` sessions, then perform `ops` random operations on random
    /// open sessions; each operation closes its session with probability `closeBps`/10,000.
    /// @return emitted the session events this call emitted.
    function run(uint256 newSessions, uint256 ops, uint256 closeBps, uint256 seed)
        external
        returns (uint256 emitted)
    {
        // Enough for every deposit and donation below; the game is paid for its wins.
        token.mint(address(this), newSessions * SESSION_FUNDS * 2 + ops * OP_FUNDS * 2);
        token.mint(address(game), ops * OP_FUNDS * 4);
        for (uint256 i = 0; i < newSessions; ++i) {
            _open(uint256(keccak256(abi.encode(seed, "open", i))));
            ++emitted;
        }
        for (uint256 i = 0; i < ops && openWallets.length > 0; ++i) {
            emitted += _operate(uint256(keccak256(abi.encode(seed, "op", i))), closeBps);
        }
        sessionEvents += emitted;
    }

    // -------------------------------------------------------------- internal

    function _open(uint256 r) private {
        uint256 deposit = (1 + (r % 10_000)) * UNIT;
        uint256 stopLoss = (r >> 16) % 3 == 0 ? 0 : deposit / 2;
        uint256 takeProfit = (r >> 20) % 3 == 0 ? 0 : deposit * 3;
        address[] memory targets = new address[](1);
        targets[0] = address(game);
        SessionParams memory p = SessionParams({
            operator: address(this),
            token: address(token),
            deposit: deposit,
            expiry: uint64(block.timestamp + 1 days + ((r >> 24) % 30 days)),
            budget: deposit * (1 + ((r >> 48) % 20)),
            stopLoss: stopLoss,
            takeProfit: takeProfit,
            policy: _policy(r >> 56),
            targets: targets,
            maxFeeBps: type(uint16).max
        });
        address wallet = factory.createSession(p, bytes32(created++));
        token.approve(wallet, type(uint256).max);
        openWallets.push(wallet);
    }

    function _policy(uint256 r) private pure returns (string memory) {
        uint256 k = r % 4;
        if (k == 0) return "berzerker";
        if (k == 1) return "merchant";
        if (k == 2) return "disciple";
        return "";
    }

    /// @return emitted the wallet events this operation emitted.
    function _operate(uint256 r, uint256 closeBps) private returns (uint256 emitted) {
        uint256 index = r % openWallets.length;
        SessionWallet w = SessionWallet(openWallets[index]);
        uint256 kind = (r >> 64) % 10_000;
        uint256 pick = r >> 96;
        if (w.revoked() || w.isExpired()) {
            // the operator has no rights left: anyone may sweep it
            if (kind < 5_000) return _close(index, w, CloseReason.Swept);
            return _deposit(w, pick);
        }
        if (kind < closeBps) return _close(index, w, CloseReason(pick % 5));
        kind = (kind * 7 + (pick >> 32)) % 1_000;
        if (kind < 450) return _execute(w, pick);
        if (kind < 650) return _deposit(w, pick);
        if (kind < 770) return _withdraw(w, pick);
        if (kind < 870) {
            w.extend(w.expiry() + uint64(1 hours + (pick % 7 days)));
            return 1;
        }
        if (kind < 940) return _donate(w, pick);
        if (kind < 970 && closedWallets.length > 0) return _recover(pick);
        if (kind < 973) {
            w.revoke();
            return 1;
        }
        return _deposit(w, pick);
    }

    function _deposit(SessionWallet w, uint256 pick) private returns (uint256) {
        w.deposit(1 + (pick % OP_FUNDS), type(uint16).max);
        return 1;
    }

    function _withdraw(SessionWallet w, uint256 pick) private returns (uint256) {
        uint256 balance = token.balanceOf(address(w));
        if (balance == 0) return _deposit(w, pick);
        w.withdraw(1 + ((balance * (pick % 50)) / 100));
        return 1;
    }

    function _execute(SessionWallet w, uint256 pick) private returns (uint256) {
        uint256 balance = token.balanceOf(address(w));
        uint256 wager = 1 + ((balance * (pick % 20)) / 100);
        if (balance == 0 || w.spent() + wager > w.budget()) return _deposit(w, pick);
        game.setOutcome((pick >> 8) % 2 == 0, 5_000 + ((pick >> 16) % 25_000));
        w.execute(address(game), abi.encodeCall(TestGame.play, (wager)), wager);
        return 1;
    }

    /// @dev A plain transfer into the wallet, synced at once (left unsynced, the wallet's
    /// next operation would record it in a `Synced` of its own, one more event to count).
    function _donate(SessionWallet w, uint256 pick) private returns (uint256) {
        token.transfer(address(w), 1 + (pick % OP_FUNDS));
        w.sync();
        return 1;
    }

    /// @dev A late transfer into a closed wallet, recovered to its owner (this contract).
    function _recover(uint256 pick) private returns (uint256) {
        address wallet = closedWallets[pick % closedWallets.length];
        token.transfer(wallet, 1 + (pick % OP_FUNDS));
        SessionWallet(wallet).recover(address(token));
        return 1;
    }

    function _close(uint256 index, SessionWallet w, CloseReason reason)
        private
        returns (uint256)
    {
        w.close(reason);
        openWallets[index] = openWallets[openWallets.length - 1];
        openWallets.pop();
        closedWallets.push(address(w));
        return 1;
    }
}
