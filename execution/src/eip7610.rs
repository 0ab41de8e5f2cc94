//! EIP-7610: contract creation at an address that has storage (but no code
//! and a zero nonce) is a collision.
//!
//! revm checks only code and nonce, because its account type does not carry
//! the storage root. The rule is retroactive to all forks and ethereum/tests
//! exercise it (`InitCollision*`, `create2collisionStorage*`,
//! `dynamicAccountOverwriteEmpty*`, `RevertInCreateInInit*`), so it is added
//! here as a revm inspector: before a create frame starts, it repeats revm's
//! own pre-checks in revm's order (depth, caller balance, caller nonce),
//! and when the target has no code, a zero nonce and storage, it performs
//! the side effects revm performs before its own collision check (caller
//! nonce bump, target warmed) and ends the frame with revm's collision
//! result: all gas given to the create is consumed. In every other case it
//! returns `None` and revm proceeds untouched. A failed storage read is
//! left in the context, where revm finds it and fails the transaction.

use crate::state::CollisionState;
use alloy_primitives::Bytes;
use revm::Inspector;
use revm::context::JournalTr;
use revm::context_interface::journaled_state::account::JournaledAccountTr;
use revm::context_interface::{ContextTr, context::ContextError};
use revm::handler::MainnetContext;
use revm::interpreter::{
    CreateInputs, CreateOutcome, Gas, InstructionResult, InterpreterResult,
    interpreter::EthInterpreter,
};
use revm::primitives::{KECCAK_EMPTY, constants::CALL_STACK_LIMIT};

/// The EIP-7610 guard (stateless; the state is the context's).
#[derive(Clone, Copy, Debug, Default)]
pub struct CreateCollisionGuard;

impl<D: CollisionState> Inspector<MainnetContext<D>, EthInterpreter> for CreateCollisionGuard {
    fn create(
        &mut self,
        context: &mut MainnetContext<D>,
        inputs: &mut CreateInputs,
    ) -> Option<CreateOutcome> {
        // revm's make_create_frame, up to its collision check. Any state
        // error is left for revm to hit and report on its own loads.
        if context.journal().depth() > CALL_STACK_LIMIT as usize {
            return None;
        }
        let journal = &mut context.journaled_state;
        let (balance, nonce) = {
            let caller = journal.load_account(inputs.caller()).ok()?;
            (caller.data.info.balance, caller.data.info.nonce)
        };
        if balance < inputs.value() || nonce == u64::MAX {
            return None;
        }
        let target = inputs.created_address(nonce);
        {
            let account = journal.load_account(target).ok()?;
            if account.data.info.code_hash != KECCAK_EMPTY || account.data.info.nonce != 0 {
                return None; // revm's own collision rule covers it.
            }
        }
        match journal.database.has_storage(target) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                // revm checks the context's error when the transaction ends
                // and fails it with this storage error.
                *context.error() = Err(ContextError::Db(e));
                return None;
            }
        }
        let journal = &mut context.journaled_state;
        // Collision: revm would have bumped the caller's nonce and warmed the
        // target (done above) before refusing the create.
        let mut caller = journal.load_account_mut(inputs.caller()).ok()?;
        caller.data.bump_nonce();
        tracing::trace!(%target, "EIP-7610 create collision (target has storage)");
        Some(CreateOutcome {
            result: InterpreterResult {
                result: InstructionResult::CreateCollision,
                gas: Gas::new_with_regular_gas_and_reservoir(
                    inputs.gas_limit(),
                    inputs.reservoir(),
                ),
                output: Bytes::new(),
            },
            address: None,
            charged_create_state_gas: inputs.charged_create_state_gas(),
        })
    }
}
