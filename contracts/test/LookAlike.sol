// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {CloseReason, ISessionWalletEvents, ISessionFactoryEvents} from "../src/SessionTypes.sol";

/// @notice Hostile look-alike: emits exactly the event signatures of a real wallet and of
/// the factory, with whatever arguments a test passes, from an address no factory created.
/// The indexer must ignore (and count) every one of them.
contract LookAlikeWallet is ISessionWalletEvents, ISessionFactoryEvents {
    function fakeDeposited(uint64 seq, address from, uint256 amount, uint256 balanceAfter)
        external
    {
        emit Deposited(seq, from, amount, 0, balanceAfter);
    }

    function fakeExecuted(uint64 seq, address target, uint256 spent, uint256 balanceAfter)
        external
    {
        emit Executed(seq, target, bytes4(0), spent, spent, 0, spent, balanceAfter);
    }

    function fakeWithdrawn(uint64 seq, address to, uint256 amount, uint256 balanceAfter)
        external
    {
        emit Withdrawn(seq, to, amount, balanceAfter);
    }

    function fakeClosed(uint64 seq, CloseReason reason, uint256 refund) external {
        emit Closed(seq, reason, msg.sender, refund, 0);
    }

    function fakeSessionCreated(address wallet, address owner, address operator, address token)
        external
    {
        address[] memory targets = new address[](0);
        emit SessionCreated(
            wallet, owner, operator, token, 1e18, 0, type(uint64).max, 1e18, 0, 0, "spoof",
            targets, bytes32(0), 1e18
        );
    }
}
